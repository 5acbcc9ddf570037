/*
 * tok_decode.c - ids to text: the decoder steps (ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace) over the list of token strings,
 * clean_up_tokenization_spaces, and incremental (streaming) detokenization.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static const char fffd[] = "\xEF\xBF\xBD";

/* ---- decoder steps (each maps a list of token strings to a new list) ---------- */

static enum status dec_bytelevel(const struct tok_pieces *in, struct tok_pieces *out)
{
    struct tok_buf raw = {0};
    enum status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < in->n; i++) {
        const unsigned char *s = (const unsigned char *)in->buf.data + in->off[i];
        size_t n = in->len[i], start = raw.len;
        /* A token with a character outside the alphabet is taken as raw bytes, as HF does. */
        for (size_t j = 0; st == ST_OK && j < n;) {
            uint32_t cp;
            int k = tok_utf8_next(s + j, n - j, &cp);
            int b = k > 0 ? tok_cp_to_byte(cp) : -1;
            if (b < 0) {
                raw.len = start;
                st = tok_buf_append(&raw, (const char *)s, n);
                break;
            }
            char c = (char)b;
            st = tok_buf_append(&raw, &c, 1);
            j += (size_t)k;
        }
    }
    struct tok_buf text = {0};
    if (st == ST_OK &&
        (st = tok_utf8_append_lossy(&text, raw.data ? raw.data : "", raw.len)) == ST_OK)
        st = tok_pieces_add(out, text.data, text.len);
    tok_buf_free(&raw);
    tok_buf_free(&text);
    return st;
}

static enum status dec_replace(const struct tok_decoder *d, const struct tok_pieces *in,
                               struct tok_pieces *out)
{
    struct tok_span *spans = NULL;
    size_t n_spans = 0, cap = 0;
    struct tok_buf t = {0};
    enum status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < in->n; i++) {
        const char *s = in->buf.data + in->off[i];
        st = tok_pattern_spans(&d->pattern, s, in->len[i], &spans, &n_spans, &cap);
        t.len = 0;
        st = st == ST_OK ? tok_buf_append(&t, "", 0) : st;
        for (size_t k = 0; st == ST_OK && k < n_spans; k++) {
            if (spans[k].is_match)
                st = tok_buf_append(&t, d->content, d->content_len);
            else
                st = tok_buf_append(&t, s + spans[k].start, spans[k].end - spans[k].start);
        }
        if (st == ST_OK)
            st = tok_pieces_add(out, t.data, t.len);
    }
    free(spans);
    tok_buf_free(&t);
    return st;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Runs of <0xXX> tokens become their bytes if valid UTF-8, else one U+FFFD per byte. */
static enum status dec_bytefallback(const struct tok_pieces *in, struct tok_pieces *out)
{
    struct tok_buf run = {0};
    size_t run_tokens = 0;
    enum status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i <= in->n; i++) {
        const char *s = i < in->n ? in->buf.data + in->off[i] : NULL;
        int byte = -1;
        if (s && in->len[i] == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0)
            byte = hexval(s[3]) * 16 + hexval(s[4]);
        if (byte >= 0) {
            char c = (char)byte;
            st = tok_buf_append(&run, &c, 1);
            run_tokens++;
            continue;
        }
        if (run_tokens) {
            if (tok_utf8_valid(run.data, run.len)) {
                st = tok_pieces_add(out, run.data, run.len);
            } else {
                for (size_t k = 0; st == ST_OK && k < run_tokens; k++)
                    st = tok_pieces_add(out, fffd, 3);
            }
            run.len = 0;
            run_tokens = 0;
        }
        if (s && st == ST_OK)
            st = tok_pieces_add(out, s, in->len[i]);
    }
    tok_buf_free(&run);
    return st;
}

static enum status dec_fuse(const struct tok_pieces *in, struct tok_pieces *out)
{
    return tok_pieces_add(out, in->buf.data ? in->buf.data : "", in->buf.len);
}

static enum status dec_strip(const struct tok_decoder *d, const struct tok_pieces *in,
                             struct tok_pieces *out)
{
    size_t cl = d->content_len;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->buf.data + in->off[i];
        size_t a = 0, b = in->len[i];
        for (int k = 0; k < d->start && b - a >= cl && !memcmp(s + a, d->content, cl); k++)
            a += cl;
        for (int k = 0; k < d->stop && b - a >= cl && !memcmp(s + b - cl, d->content, cl); k++)
            b -= cl;
        if (tok_pieces_add(out, s + a, b - a) != ST_OK)
            return ST_ERR_NOMEM;
    }
    return ST_OK;
}

static enum status dec_metaspace(const struct tok_decoder *d, const struct tok_pieces *in,
                                 struct tok_pieces *out)
{
    size_t rl = strlen(d->replacement);
    struct tok_buf t = {0};
    enum status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < in->n; i++) {
        const char *s = in->buf.data + in->off[i];
        size_t n = in->len[i], j = 0;
        t.len = 0;
        st = tok_buf_append(&t, "", 0);
        if (i == 0 && d->prepend != TOK_PREPEND_NEVER && n >= rl && !memcmp(s, d->replacement, rl))
            j = rl;
        while (st == ST_OK && j < n) {
            if (j + rl <= n && !memcmp(s + j, d->replacement, rl)) {
                st = tok_buf_append(&t, " ", 1);
                j += rl;
            } else {
                st = tok_buf_append(&t, s + j, 1);
                j++;
            }
        }
        if (st == ST_OK)
            st = tok_pieces_add(out, t.data, t.len);
    }
    tok_buf_free(&t);
    return st;
}

/* ---- decode ------------------------------------------------------------------- */

static enum status decode_into(const struct tokenizer *tok, const int32_t *ids, size_t n,
                               int skip_special, struct tok_buf *text)
{
    struct tok_pieces a = {0}, b = {0};
    enum status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < n; i++) {
        size_t len;
        const char *s = tok_str_of(tok, ids[i], &len);
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            st = ST_ERR_RANGE;
        else if (s && !(skip_special && (tok->id_flags[ids[i]] & TOK_ID_SPECIAL)))
            st = tok_pieces_add(&a, s, len);
    }
    for (size_t k = 0; st == ST_OK && k < tok->n_decoders; k++) {
        const struct tok_decoder *d = &tok->decoders[k];
        tok_pieces_clear(&b);
        switch (d->kind) {
        case TOK_DEC_BYTELEVEL: st = dec_bytelevel(&a, &b); break;
        case TOK_DEC_REPLACE: st = dec_replace(d, &a, &b); break;
        case TOK_DEC_BYTEFALLBACK: st = dec_bytefallback(&a, &b); break;
        case TOK_DEC_FUSE: st = dec_fuse(&a, &b); break;
        case TOK_DEC_STRIP: st = dec_strip(d, &a, &b); break;
        case TOK_DEC_METASPACE: st = dec_metaspace(d, &a, &b); break;
        }
        struct tok_pieces t = a;
        a = b;
        b = t;
    }
    /* Without a decoder HF joins the tokens with spaces. */
    struct tok_buf joined = {0};
    for (size_t i = 0; st == ST_OK && i < a.n; i++) {
        if (i > 0 && !tok->has_decoder)
            st = tok_buf_append(&joined, " ", 1);
        if (st == ST_OK)
            st = tok_buf_append(&joined, a.buf.data + a.off[i], a.len[i]);
    }
    /* Token strings from an untrusted file may be invalid UTF-8: never pass that on. */
    text->len = 0;
    if (st == ST_OK)
        st = tok_buf_append(text, "", 0);
    if (st == ST_OK && joined.len)
        st = tok_utf8_append_lossy(text, joined.data, joined.len);
    tok_buf_free(&joined);
    tok_pieces_free(&a);
    tok_pieces_free(&b);
    return st;
}

/* transformers' clean_up_tokenization: drop the space before punctuation and contractions. */
static void clean_up(struct tok_buf *t)
{
    static const char *const from[] = {" .",   " ?",  " !",  " ,",   " ' ",
                                       " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof(from) / sizeof(from[0]); r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]), w = 0;
        for (size_t i = 0; i < t->len;) {
            if (i + fl <= t->len && !memcmp(t->data + i, from[r], fl)) {
                memmove(t->data + w, to[r], tl);
                w += tl;
                i += fl;
            } else {
                t->data[w++] = t->data[i++];
            }
        }
        t->len = w;
        t->data[w] = '\0';
    }
}

static enum status decode_common(const struct tokenizer *tok, const int32_t *ids, size_t n,
                                 int skip_special, int cleanup, char **text)
{
    *text = NULL;
    struct tok_buf t = {0};
    enum status st = decode_into(tok, ids, n, skip_special, &t);
    if (st != ST_OK) {
        tok_buf_free(&t);
        return st;
    }
    if (cleanup)
        clean_up(&t);
    *text = t.data;
    return ST_OK;
}

enum status tok_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                       char **text)
{
    return decode_common(tok, ids, n, skip_special, tok->clean_up, text);
}

enum status tok_decode_raw(const struct tokenizer *tok, const int32_t *ids, size_t n,
                           int skip_special, char **text)
{
    return decode_common(tok, ids, n, skip_special, 0, text);
}

/* ---- streaming ------------------------------------------------------------------ */

/*
 * The stream re-decodes a short window: the ids of the last emitted chunk
 * (context for decoders that look at the first token, like Strip) plus the
 * ids not yet emitted, and emits what the new ids added once it no longer
 * ends in U+FFFD (an incomplete character).
 */
struct tok_stream {
    const struct tokenizer *tok;
    int skip_special;
    int32_t *ids;
    size_t n, cap;
    size_t prefix, read; /* window start; end of what was emitted */
    struct tok_buf a, b, out;
};

enum status tok_stream_new(const struct tokenizer *tok, int skip_special, struct tok_stream **out)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return ST_ERR_NOMEM;
    (*out)->tok = tok;
    (*out)->skip_special = skip_special;
    return ST_OK;
}

void tok_stream_free(struct tok_stream *s)
{
    if (!s)
        return;
    free(s->ids);
    tok_buf_free(&s->a);
    tok_buf_free(&s->b);
    tok_buf_free(&s->out);
    free(s);
}

static int ends_incomplete(const struct tok_buf *t)
{
    return t->len >= 3 && !memcmp(t->data + t->len - 3, fffd, 3);
}

static enum status stream_step(struct tok_stream *s, int force, const char **text, size_t *len)
{
    s->out.len = 0;
    enum status st = tok_buf_append(&s->out, "", 0);
    if (st == ST_OK)
        st = decode_into(s->tok, s->ids + s->prefix, s->read - s->prefix, s->skip_special, &s->a);
    if (st == ST_OK)
        st = decode_into(s->tok, s->ids + s->prefix, s->n - s->prefix, s->skip_special, &s->b);
    if (st != ST_OK)
        return st;
    if (s->b.len > s->a.len && (force || !ends_incomplete(&s->b))) {
        size_t from = s->a.len;
        /* Never cut a character, even if the window's decode rewrote its prefix. */
        while (from < s->b.len && ((unsigned char)s->b.data[from] & 0xC0) == 0x80)
            from++;
        st = tok_buf_append(&s->out, s->b.data + from, s->b.len - from);
        if (st != ST_OK)
            return st;
        memmove(s->ids, s->ids + s->read, (s->n - s->read) * sizeof(*s->ids));
        s->n -= s->read;
        s->prefix = 0;
        s->read = s->n;
    }
    *text = s->out.data;
    *len = s->out.len;
    return ST_OK;
}

enum status tok_stream_push(struct tok_stream *s, int32_t id, const char **text, size_t *len)
{
    if (id < 0 || id >= s->tok->vocab_size)
        return ST_ERR_RANGE;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        int32_t *v = realloc(s->ids, cap * sizeof(*v));
        if (!v)
            return ST_ERR_NOMEM;
        s->ids = v;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
    return stream_step(s, 0, text, len);
}

enum status tok_stream_flush(struct tok_stream *s, const char **text, size_t *len)
{
    return stream_step(s, 1, text, len);
}

/*
 * tok_encode.c - text to ids: added tokens are split out of the raw text
 * first (then out of the normalized text for `normalized` ones), each
 * remaining section is normalized, pre-tokenized and run through BPE, and
 * the post-processor's ids are put around the result.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct enc {
    const struct tokenizer *tok;
    int parse_special;
    struct tok_bpe_scratch *bpe;
    struct tok_pieces pieces;
    struct tok_buf norm;
    int32_t *ids;
    size_t n, cap;
};

static enum status push_id(struct enc *e, int32_t id)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        int32_t *v = realloc(e->ids, cap * sizeof(*v));
        if (!v)
            return ST_ERR_NOMEM;
        e->ids = v;
        e->cap = cap;
    }
    e->ids[e->n++] = id;
    return ST_OK;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_word(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (unsigned char)c >= 0x80;
}

/* Calls fn on each stretch of text between added tokens and push_id on the tokens. */
typedef enum status (*section_fn)(struct enc *e, const char *s, size_t n, int first);

static enum status split_added(struct enc *e, const struct tok_trie *trie, const char *s, size_t n,
                               int first, section_fn fn)
{
    const struct tokenizer *tok = e->tok;
    size_t seg = 0, pos = 0;
    enum status st;
    while (pos < n) {
        size_t mlen = 0;
        int32_t a = tok_trie_match(tok, trie, s, n, pos, e->parse_special, &mlen);
        if (a < 0) {
            pos++;
            continue;
        }
        const struct tok_added *ad = &tok->added[a];
        size_t ms = pos, me = pos + mlen;
        if (ad->single_word && ((ms > 0 && is_word(s[ms - 1])) || (me < n && is_word(s[me])))) {
            pos++;
            continue;
        }
        while (ad->lstrip && ms > seg && is_space(s[ms - 1]))
            ms--;
        while (ad->rstrip && me < n && is_space(s[me]))
            me++;
        if (ms > seg && (st = fn(e, s + seg, ms - seg, first && seg == 0)) != ST_OK)
            return st;
        if ((st = push_id(e, ad->id)) != ST_OK)
            return st;
        seg = pos = me;
    }
    if (n > seg)
        return fn(e, s + seg, n - seg, first && seg == 0);
    return ST_OK;
}

static enum status model_section(struct enc *e, const char *s, size_t n, int first)
{
    enum status st = tok_pretokenize(e->tok, s, n, first, &e->pieces);
    for (size_t i = 0; st == ST_OK && i < e->pieces.n; i++)
        st = tok_bpe_word(e->tok, e->bpe, e->pieces.buf.data + e->pieces.off[i], e->pieces.len[i],
                          &e->ids, &e->n, &e->cap);
    return st;
}

static enum status raw_section(struct enc *e, const char *s, size_t n, int first)
{
    enum status st = tok_normalize(e->tok, s, n, &e->norm);
    if (st != ST_OK)
        return st;
    return split_added(e, &e->tok->trie_norm, e->norm.data, e->norm.len, first, model_section);
}

enum status tok_encode(const struct tokenizer *tok, const char *text, size_t len, unsigned flags,
                       int32_t **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len)
        return ST_ERR_INVALID;
    if (len && !tok_utf8_valid(text, len))
        return ST_ERR_INVALID;
    struct enc e = {.tok = tok, .parse_special = !!(flags & TOK_ENCODE_PARSE_SPECIAL)};
    e.bpe = tok_bpe_scratch_new();
    e.cap = 64;
    e.ids = malloc(e.cap * sizeof(*e.ids)); /* non-NULL even for an empty result */
    enum status st = e.bpe && e.ids ? ST_OK : ST_ERR_NOMEM;
    int add = !!(flags & TOK_ENCODE_ADD_SPECIAL);
    for (size_t i = 0; st == ST_OK && add && i < tok->n_post_pre; i++)
        st = push_id(&e, tok->post_pre[i]);
    if (st == ST_OK && len)
        st = split_added(&e, &tok->trie_raw, text, len, 1, raw_section);
    for (size_t i = 0; st == ST_OK && add && i < tok->n_post_post; i++)
        st = push_id(&e, tok->post_post[i]);
    tok_bpe_scratch_free(e.bpe);
    tok_pieces_free(&e.pieces);
    tok_buf_free(&e.norm);
    if (st != ST_OK) {
        free(e.ids);
        return st;
    }
    *ids = e.ids;
    *n_ids = e.n;
    return ST_OK;
}

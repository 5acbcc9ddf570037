/*
 * tok_pretok.c - pre-tokenizers: Split (literal or regex, all five
 * delimiter behaviours, invert), ByteLevel (optional GPT-2 regex, prefix
 * space, byte -> visible character mapping), Metaspace, WhitespaceSplit.
 * A Sequence was flattened into tok->pretoks at load.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct span_list {
    struct tok_span *v;
    size_t n, cap;
};

/* Groups pattern spans into pieces the way HF's SplitDelimiterBehavior does. */
static enum status split_piece(const struct tok_pretok *pt, const char *s, size_t n,
                               struct span_list *sp, struct tok_pieces *out)
{
    enum status st = tok_pattern_spans(&pt->pattern, s, n, &sp->v, &sp->n, &sp->cap);
    if (st != ST_OK)
        return st;
    struct tok_span *v = sp->v;
    size_t k = 0; /* grouped spans are compacted into v[0..k) */
    int prev_match = 0;
    if (pt->behavior == TOK_SPLIT_MERGED_NEXT) {
        /* HF folds from the end: a match joins the piece that follows it. */
        size_t m = sp->n;
        size_t w = m; /* output written downwards into v[w..m) */
        for (size_t i = m; i-- > 0;) {
            struct tok_span cur = v[i];
            int is_match = cur.is_match != pt->invert;
            if (is_match && !prev_match && w < m)
                v[w].start = cur.start;
            else
                v[--w] = (struct tok_span){cur.start, cur.end, 0};
            prev_match = is_match;
        }
        for (size_t i = w; i < m; i++)
            v[k++] = v[i];
    } else {
        for (size_t i = 0; i < sp->n; i++) {
            struct tok_span cur = v[i];
            int is_match = cur.is_match != pt->invert;
            switch (pt->behavior) {
            case TOK_SPLIT_REMOVED:
                if (!is_match)
                    v[k++] = cur;
                break;
            case TOK_SPLIT_ISOLATED: v[k++] = cur; break;
            case TOK_SPLIT_MERGED_PREV:
                if (is_match && !prev_match && k > 0)
                    v[k - 1].end = cur.end;
                else
                    v[k++] = cur;
                break;
            case TOK_SPLIT_CONTIGUOUS:
                if (is_match == prev_match && k > 0)
                    v[k - 1].end = cur.end;
                else
                    v[k++] = cur;
                break;
            case TOK_SPLIT_MERGED_NEXT: break;
            }
            prev_match = is_match;
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (v[i].end > v[i].start &&
            (st = tok_pieces_add(out, s + v[i].start, v[i].end - v[i].start)) != ST_OK)
            return st;
    }
    return ST_OK;
}

static enum status bytelevel_map(const char *s, size_t n, struct tok_pieces *out)
{
    struct tok_buf *b = &out->buf;
    if (tok_pieces_add(out, "", 0) != ST_OK || tok_buf_reserve(b, n * 2) != ST_OK)
        return ST_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        int m = tok_utf8_encode(tok_byte_to_cp((unsigned char)s[i]), enc);
        if (tok_buf_append(b, enc, (size_t)m) != ST_OK)
            return ST_ERR_NOMEM;
    }
    out->len[out->n - 1] = b->len - out->off[out->n - 1];
    return ST_OK;
}

static enum status bytelevel_piece(const struct tok_pretok *pt, const char *s, size_t n,
                                   struct tok_buf *tmp, struct span_list *sp,
                                   struct tok_pieces *out)
{
    enum status st;
    if (pt->add_prefix_space && (n == 0 || s[0] != ' ')) {
        tmp->len = 0;
        if (tok_buf_append(tmp, " ", 1) != ST_OK || tok_buf_append(tmp, s, n) != ST_OK)
            return ST_ERR_NOMEM;
        s = tmp->data;
        n = tmp->len;
    }
    if (!pt->use_regex)
        return n ? bytelevel_map(s, n, out) : ST_OK;
    if ((st = tok_pattern_spans(&pt->pattern, s, n, &sp->v, &sp->n, &sp->cap)) != ST_OK)
        return st;
    for (size_t i = 0; i < sp->n; i++) {
        if ((st = bytelevel_map(s + sp->v[i].start, sp->v[i].end - sp->v[i].start, out)) != ST_OK)
            return st;
    }
    return ST_OK;
}

static enum status metaspace_piece(const struct tok_pretok *pt, const char *s, size_t n, int first,
                                   struct tok_buf *tmp, struct tok_pieces *out)
{
    size_t rl = strlen(pt->replacement);
    tmp->len = 0;
    int starts = n >= rl && memcmp(s, pt->replacement, rl) == 0;
    int prepend = pt->prepend == TOK_PREPEND_ALWAYS || (pt->prepend == TOK_PREPEND_FIRST && first);
    if (prepend && !(starts || (n > 0 && s[0] == ' ')) &&
        tok_buf_append(tmp, pt->replacement, rl) != ST_OK)
        return ST_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        enum status st =
            s[i] == ' ' ? tok_buf_append(tmp, pt->replacement, rl) : tok_buf_append(tmp, s + i, 1);
        if (st != ST_OK)
            return st;
    }
    if (!pt->split)
        return tmp->len ? tok_pieces_add(out, tmp->data, tmp->len) : ST_OK;
    /* MergedWithNext on the replacement: each piece starts at a replacement. */
    size_t start = 0;
    for (size_t i = 0; i + rl <= tmp->len; i++) {
        if (i > start && memcmp(tmp->data + i, pt->replacement, rl) == 0) {
            if (tok_pieces_add(out, tmp->data + start, i - start) != ST_OK)
                return ST_ERR_NOMEM;
            start = i;
        }
    }
    return tmp->len > start ? tok_pieces_add(out, tmp->data + start, tmp->len - start) : ST_OK;
}

static int ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static enum status whitespace_piece(const char *s, size_t n, struct tok_pieces *out)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && ascii_space(s[i]))
            i++;
        size_t start = i;
        while (i < n && !ascii_space(s[i]))
            i++;
        if (i > start && tok_pieces_add(out, s + start, i - start) != ST_OK)
            return ST_ERR_NOMEM;
    }
    return ST_OK;
}

enum status tok_pretokenize(const struct tokenizer *tok, const char *s, size_t n, int first,
                            struct tok_pieces *out)
{
    tok_pieces_clear(out);
    enum status st = tok_pieces_add(out, s, n);
    if (st != ST_OK || tok->n_pretoks == 0)
        return st;
    struct tok_pieces cur = {0};
    struct tok_buf tmp = {0};
    struct span_list sp = {0};
    for (size_t k = 0; st == ST_OK && k < tok->n_pretoks; k++) {
        const struct tok_pretok *pt = &tok->pretoks[k];
        struct tok_pieces t = cur;
        cur = *out;
        *out = t;
        tok_pieces_clear(out);
        for (size_t i = 0; st == ST_OK && i < cur.n; i++) {
            const char *p = cur.buf.data + cur.off[i];
            size_t pn = cur.len[i];
            switch (pt->kind) {
            case TOK_PRETOK_SPLIT: st = split_piece(pt, p, pn, &sp, out); break;
            case TOK_PRETOK_BYTELEVEL: st = bytelevel_piece(pt, p, pn, &tmp, &sp, out); break;
            case TOK_PRETOK_METASPACE:
                st = metaspace_piece(pt, p, pn, first && i == 0, &tmp, out);
                break;
            case TOK_PRETOK_WHITESPACE_SPLIT: st = whitespace_piece(p, pn, out); break;
            }
        }
    }
    tok_pieces_free(&cur);
    tok_buf_free(&tmp);
    free(sp.v);
    return st;
}

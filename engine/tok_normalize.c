/*
 * tok_normalize.c - normalizers: Unicode forms via utf8proc, Lowercase,
 * Prepend, Replace, Strip.  A Sequence was flattened into tok->norms at load.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

static enum status apply_unicode(enum tok_norm_kind kind, struct tok_buf *b)
{
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (kind) {
    case TOK_NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TOK_NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TOK_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (b->len == 0)
        return ST_OK;
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)b->data, (utf8proc_ssize_t)b->len, &out, opt);
    if (n < 0)
        return n == UTF8PROC_ERROR_NOMEM ? ST_ERR_NOMEM : ST_ERR_INVALID;
    b->len = 0;
    enum status st = tok_buf_append(b, (const char *)out, (size_t)n);
    free(out);
    return st;
}

static enum status apply_lowercase(struct tok_buf *b)
{
    struct tok_buf out = {0};
    const unsigned char *u = (const unsigned char *)b->data;
    size_t i = 0;
    while (i < b->len) {
        uint32_t cp;
        int k = tok_utf8_next(u + i, b->len - i, &cp);
        if (k < 0) {
            tok_buf_free(&out);
            return ST_ERR_INVALID;
        }
        char enc[4];
        int m = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
        if (tok_buf_append(&out, enc, (size_t)m) != ST_OK) {
            tok_buf_free(&out);
            return ST_ERR_NOMEM;
        }
        i += (size_t)k;
    }
    tok_buf_free(b);
    *b = out;
    return ST_OK;
}

static enum status apply_replace(const struct tok_normalizer *nm, struct tok_buf *b)
{
    struct tok_span *spans = NULL;
    size_t n_spans = 0, cap = 0;
    enum status st = tok_pattern_spans(&nm->pattern, b->data, b->len, &spans, &n_spans, &cap);
    struct tok_buf out = {0};
    for (size_t i = 0; st == ST_OK && i < n_spans; i++) {
        if (spans[i].is_match)
            st = tok_buf_append(&out, nm->content, nm->content_len);
        else
            st = tok_buf_append(&out, b->data + spans[i].start, spans[i].end - spans[i].start);
    }
    free(spans);
    if (st == ST_OK && n_spans == 0)
        st = tok_buf_append(&out, "", 0);
    if (st != ST_OK) {
        tok_buf_free(&out);
        return st;
    }
    tok_buf_free(b);
    *b = out;
    return ST_OK;
}

static int is_unicode_space(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static void apply_strip(const struct tok_normalizer *nm, struct tok_buf *b)
{
    const unsigned char *u = (const unsigned char *)b->data;
    size_t start = 0, end = b->len;
    while (nm->strip_left && start < end) {
        uint32_t cp;
        int k = tok_utf8_next(u + start, end - start, &cp);
        if (k < 0 || !is_unicode_space(cp))
            break;
        start += (size_t)k;
    }
    while (nm->strip_right && end > start) {
        size_t p = end - 1;
        while (p > start && (u[p] & 0xC0) == 0x80)
            p--;
        uint32_t cp;
        int k = tok_utf8_next(u + p, end - p, &cp);
        if (k < 0 || !is_unicode_space(cp))
            break;
        end = p;
    }
    memmove(b->data, b->data + start, end - start);
    b->len = end - start;
    b->data[b->len] = '\0';
}

enum status tok_normalize(const struct tokenizer *tok, const char *s, size_t n, struct tok_buf *out)
{
    out->len = 0;
    enum status st = tok_buf_append(out, s, n);
    for (size_t i = 0; st == ST_OK && i < tok->n_norms; i++) {
        const struct tok_normalizer *nm = &tok->norms[i];
        switch (nm->kind) {
        case TOK_NORM_NFC:
        case TOK_NORM_NFD:
        case TOK_NORM_NFKC:
        case TOK_NORM_NFKD: st = apply_unicode(nm->kind, out); break;
        case TOK_NORM_LOWERCASE: st = apply_lowercase(out); break;
        case TOK_NORM_PREPEND:
            /* HF prepends only to non-empty strings. */
            if (out->len > 0) {
                st = tok_buf_reserve(out, nm->content_len);
                if (st == ST_OK) {
                    memmove(out->data + nm->content_len, out->data, out->len + 1);
                    memcpy(out->data, nm->content, nm->content_len);
                    out->len += nm->content_len;
                }
            }
            break;
        case TOK_NORM_REPLACE: st = apply_replace(nm, out); break;
        case TOK_NORM_STRIP: apply_strip(nm, out); break;
        }
    }
    return st;
}

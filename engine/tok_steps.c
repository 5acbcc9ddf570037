/*
 * tok_steps.c - building the pipeline steps of a tokenizer from
 * tokenizer.json: normalizer, pre_tokenizer, decoder and post_processor.
 * Sequences are flattened into one step list each; every field of the
 * untrusted JSON is type-checked before use.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define FAIL(st, ...) status_fail(err, errlen, st, __VA_ARGS__)

static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- pipeline steps --------------------------------------------------------- */

static enum status parse_pattern(const cJSON *obj, struct tok_pattern *p, char *err, size_t errlen)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    if (!cJSON_IsObject(pat))
        return FAIL(ST_ERR_FORMAT, "missing pattern object");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    if (cJSON_IsString(s) && s->valuestring)
        return tok_pattern_init(p, s->valuestring, strlen(s->valuestring), 0, err, errlen);
    if (cJSON_IsString(r) && r->valuestring)
        return tok_pattern_init(p, r->valuestring, strlen(r->valuestring), 1, err, errlen);
    return FAIL(ST_ERR_FORMAT, "pattern needs a String or Regex");
}

/* Grows a step array by one zeroed element. */
static void *grow(void *arr, size_t *n, size_t size)
{
    char *p = realloc(arr, (*n + 1) * size);
    if (!p)
        return NULL;
    memset(p + *n * size, 0, size);
    (*n)++;
    return p;
}

static enum status parse_normalizer(struct tokenizer *tok, const cJSON *obj, char *err,
                                    size_t errlen)
{
    if (!obj || cJSON_IsNull(obj))
        return ST_OK;
    const char *type = cJSON_IsObject(obj) ? tok_json_type(obj) : NULL;
    if (!type)
        return FAIL(ST_ERR_FORMAT, "normalizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "normalizers");
        if (!cJSON_IsArray(list))
            return FAIL(ST_ERR_FORMAT, "Sequence normalizer without a normalizers array");
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            enum status st = parse_normalizer(tok, it, err, errlen);
            if (st != ST_OK)
                return st;
        }
        return ST_OK;
    }
    struct tok_normalizer *v = grow(tok->norms, &tok->n_norms, sizeof(*v));
    if (!v)
        return FAIL(ST_ERR_NOMEM, "out of memory");
    tok->norms = v;
    struct tok_normalizer *nm = &v[tok->n_norms - 1];
    int bad = 0;
    if (!strcmp(type, "NFC")) {
        nm->kind = TOK_NORM_NFC;
    } else if (!strcmp(type, "NFD")) {
        nm->kind = TOK_NORM_NFD;
    } else if (!strcmp(type, "NFKC")) {
        nm->kind = TOK_NORM_NFKC;
    } else if (!strcmp(type, "NFKD")) {
        nm->kind = TOK_NORM_NFKD;
    } else if (!strcmp(type, "Lowercase")) {
        nm->kind = TOK_NORM_LOWERCASE;
    } else if (!strcmp(type, "Prepend")) {
        nm->kind = TOK_NORM_PREPEND;
        const char *s = tok_json_str(obj, "prepend", &bad);
        if (!s)
            return FAIL(ST_ERR_FORMAT, "Prepend normalizer without a prepend string");
        if (tok_strdup(s, &nm->content, &nm->content_len) != ST_OK)
            return FAIL(ST_ERR_NOMEM, "out of memory");
    } else if (!strcmp(type, "Replace")) {
        nm->kind = TOK_NORM_REPLACE;
        const char *s = tok_json_str(obj, "content", &bad);
        if (!s)
            return FAIL(ST_ERR_FORMAT, "Replace normalizer without a content string");
        if (tok_strdup(s, &nm->content, &nm->content_len) != ST_OK)
            return FAIL(ST_ERR_NOMEM, "out of memory");
        return parse_pattern(obj, &nm->pattern, err, errlen);
    } else if (!strcmp(type, "Strip")) {
        nm->kind = TOK_NORM_STRIP;
        nm->strip_left = tok_json_bool(obj, "strip_left", 1, &bad);
        nm->strip_right = tok_json_bool(obj, "strip_right", 1, &bad);
    } else {
        tok->n_norms--;
        return FAIL(ST_ERR_UNSUPPORTED, "unsupported normalizer type '%s'", type);
    }
    return bad ? FAIL(ST_ERR_FORMAT, "bad field in %s normalizer", type) : ST_OK;
}

static enum status parse_replacement(const cJSON *obj, char out[5], enum tok_prepend_scheme *ps,
                                     char *err, size_t errlen)
{
    int bad = 0;
    const char *r = tok_json_str(obj, "replacement", &bad);
    if (!r)
        r = "\xe2\x96\x81";
    uint32_t cp;
    size_t n = strlen(r);
    if (n == 0 || n > 4 || tok_utf8_next((const unsigned char *)r, n, &cp) != (int)n)
        return FAIL(ST_ERR_FORMAT, "Metaspace replacement must be one character");
    memcpy(out, r, n + 1);
    const char *scheme = tok_json_str(obj, "prepend_scheme", &bad);
    if (scheme) {
        if (!strcmp(scheme, "always"))
            *ps = TOK_PREPEND_ALWAYS;
        else if (!strcmp(scheme, "first"))
            *ps = TOK_PREPEND_FIRST;
        else if (!strcmp(scheme, "never"))
            *ps = TOK_PREPEND_NEVER;
        else
            return FAIL(ST_ERR_FORMAT, "unknown Metaspace prepend_scheme '%s'", scheme);
    } else {
        *ps = tok_json_bool(obj, "add_prefix_space", 1, &bad) ? TOK_PREPEND_ALWAYS
                                                              : TOK_PREPEND_NEVER;
    }
    return bad ? FAIL(ST_ERR_FORMAT, "bad field in Metaspace") : ST_OK;
}

static enum status parse_pretok(struct tokenizer *tok, const cJSON *obj, char *err, size_t errlen)
{
    if (!obj || cJSON_IsNull(obj))
        return ST_OK;
    const char *type = cJSON_IsObject(obj) ? tok_json_type(obj) : NULL;
    if (!type)
        return FAIL(ST_ERR_FORMAT, "pre_tokenizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "pretokenizers");
        if (!cJSON_IsArray(list))
            return FAIL(ST_ERR_FORMAT, "Sequence pre_tokenizer without a pretokenizers array");
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            enum status st = parse_pretok(tok, it, err, errlen);
            if (st != ST_OK)
                return st;
        }
        return ST_OK;
    }
    struct tok_pretok *v = grow(tok->pretoks, &tok->n_pretoks, sizeof(*v));
    if (!v)
        return FAIL(ST_ERR_NOMEM, "out of memory");
    tok->pretoks = v;
    struct tok_pretok *pt = &v[tok->n_pretoks - 1];
    int bad = 0;
    if (!strcmp(type, "Split")) {
        pt->kind = TOK_PRETOK_SPLIT;
        const char *b = tok_json_str(obj, "behavior", &bad);
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
        static const enum tok_split_behavior kinds[] = {
            TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
            TOK_SPLIT_CONTIGUOUS};
        size_t i = 0;
        while (b && i < 5 && strcmp(b, names[i]))
            i++;
        if (!b || i == 5)
            return FAIL(ST_ERR_FORMAT, "Split pre_tokenizer with a missing or unknown behavior");
        pt->behavior = kinds[i];
        pt->invert = tok_json_bool(obj, "invert", 0, &bad);
        if (bad)
            return FAIL(ST_ERR_FORMAT, "bad field in Split pre_tokenizer");
        return parse_pattern(obj, &pt->pattern, err, errlen);
    }
    if (!strcmp(type, "ByteLevel")) {
        pt->kind = TOK_PRETOK_BYTELEVEL;
        pt->add_prefix_space = tok_json_bool(obj, "add_prefix_space", 1, &bad);
        pt->use_regex = tok_json_bool(obj, "use_regex", 1, &bad);
        if (bad)
            return FAIL(ST_ERR_FORMAT, "bad field in ByteLevel pre_tokenizer");
        if (pt->use_regex)
            return tok_pattern_init(&pt->pattern, gpt2_regex, strlen(gpt2_regex), 1, err, errlen);
        return ST_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        pt->kind = TOK_PRETOK_METASPACE;
        pt->split = tok_json_bool(obj, "split", 1, &bad);
        if (bad)
            return FAIL(ST_ERR_FORMAT, "bad field in Metaspace pre_tokenizer");
        return parse_replacement(obj, pt->replacement, &pt->prepend, err, errlen);
    }
    /* These three are fixed splits, expressed as the equivalent regex Split. */
    const char *re = NULL;
    pt->kind = TOK_PRETOK_SPLIT;
    if (!strcmp(type, "Whitespace")) {
        re = "\\w+|[^\\w\\s]+";
        pt->behavior = TOK_SPLIT_REMOVED;
        pt->invert = 1; /* keep the matches, drop what lies between them */
    } else if (!strcmp(type, "Digits")) {
        int individual = tok_json_bool(obj, "individual_digits", 0, &bad);
        re = individual ? "[0-9]" : "[0-9]+";
        pt->behavior = TOK_SPLIT_ISOLATED;
    } else if (!strcmp(type, "Punctuation")) {
        const char *b = tok_json_str(obj, "behavior", &bad);
        re = "[\\p{P}!-/:-@\\[-`{-~]";
        pt->behavior = TOK_SPLIT_ISOLATED;
        if (b && !strcmp(b, "Removed"))
            pt->behavior = TOK_SPLIT_REMOVED;
        else if (b && !strcmp(b, "MergedWithPrevious"))
            pt->behavior = TOK_SPLIT_MERGED_PREV;
        else if (b && !strcmp(b, "MergedWithNext"))
            pt->behavior = TOK_SPLIT_MERGED_NEXT;
        else if (b && !strcmp(b, "Contiguous"))
            pt->behavior = TOK_SPLIT_CONTIGUOUS;
        else if (b && strcmp(b, "Isolated"))
            bad = 1;
    }
    if (re) {
        if (bad)
            return FAIL(ST_ERR_FORMAT, "bad field in %s pre_tokenizer", type);
        return tok_pattern_init(&pt->pattern, re, strlen(re), 1, err, errlen);
    }
    if (!strcmp(type, "WhitespaceSplit")) {
        pt->kind = TOK_PRETOK_WHITESPACE_SPLIT;
        return ST_OK;
    }
    tok->n_pretoks--;
    return FAIL(ST_ERR_UNSUPPORTED, "unsupported pre_tokenizer type '%s'", type);
}

static enum status parse_decoder(struct tokenizer *tok, const cJSON *obj, char *err, size_t errlen)
{
    if (!obj || cJSON_IsNull(obj))
        return ST_OK;
    const char *type = cJSON_IsObject(obj) ? tok_json_type(obj) : NULL;
    if (!type)
        return FAIL(ST_ERR_FORMAT, "decoder without a type");
    tok->has_decoder = 1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "decoders");
        if (!cJSON_IsArray(list))
            return FAIL(ST_ERR_FORMAT, "Sequence decoder without a decoders array");
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            enum status st = parse_decoder(tok, it, err, errlen);
            if (st != ST_OK)
                return st;
        }
        return ST_OK;
    }
    struct tok_decoder *v = grow(tok->decoders, &tok->n_decoders, sizeof(*v));
    if (!v)
        return FAIL(ST_ERR_NOMEM, "out of memory");
    tok->decoders = v;
    struct tok_decoder *d = &v[tok->n_decoders - 1];
    int bad = 0;
    if (!strcmp(type, "ByteLevel")) {
        d->kind = TOK_DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        d->kind = TOK_DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d->kind = TOK_DEC_FUSE;
    } else if (!strcmp(type, "Replace")) {
        d->kind = TOK_DEC_REPLACE;
        const char *s = tok_json_str(obj, "content", &bad);
        if (!s)
            return FAIL(ST_ERR_FORMAT, "Replace decoder without a content string");
        if (tok_strdup(s, &d->content, &d->content_len) != ST_OK)
            return FAIL(ST_ERR_NOMEM, "out of memory");
        return parse_pattern(obj, &d->pattern, err, errlen);
    } else if (!strcmp(type, "Strip")) {
        d->kind = TOK_DEC_STRIP;
        const char *s = tok_json_str(obj, "content", &bad);
        long start = 0, stop = 0;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "start");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(obj, "stop");
        if (!s || (a && !tok_json_int(a, 0, 1 << 20, &start)) ||
            (b && !tok_json_int(b, 0, 1 << 20, &stop)))
            return FAIL(ST_ERR_FORMAT, "bad Strip decoder");
        uint32_t cp;
        size_t n = strlen(s);
        if (n == 0 || tok_utf8_next((const unsigned char *)s, n, &cp) != (int)n)
            return FAIL(ST_ERR_FORMAT, "Strip decoder content must be one character");
        if (tok_strdup(s, &d->content, &d->content_len) != ST_OK)
            return FAIL(ST_ERR_NOMEM, "out of memory");
        d->start = (int)start;
        d->stop = (int)stop;
    } else if (!strcmp(type, "Metaspace")) {
        d->kind = TOK_DEC_METASPACE;
        return parse_replacement(obj, d->replacement, &d->prepend, err, errlen);
    } else {
        tok->n_decoders--;
        return FAIL(ST_ERR_UNSUPPORTED, "unsupported decoder type '%s'", type);
    }
    return bad ? FAIL(ST_ERR_FORMAT, "bad field in %s decoder", type) : ST_OK;
}

static enum status ids_append(int32_t **arr, size_t *n, const int32_t *add, size_t n_add,
                              int at_front)
{
    if (n_add == 0)
        return ST_OK;
    int32_t *v = realloc(*arr, (*n + n_add) * sizeof(*v));
    if (!v)
        return ST_ERR_NOMEM;
    if (at_front) {
        memmove(v + n_add, v, *n * sizeof(*v));
        memcpy(v, add, n_add * sizeof(*v));
    } else {
        memcpy(v + *n, add, n_add * sizeof(*v));
    }
    *arr = v;
    *n += n_add;
    return ST_OK;
}

static int id_ok(const struct tokenizer *tok, long id)
{
    return id >= 0 && id < tok->vocab_size && (tok->id_flags[id] & TOK_ID_PRESENT);
}

static enum status parse_template(struct tokenizer *tok, const cJSON *obj, int32_t **pre,
                                  size_t *n_pre, int32_t **post, size_t *n_post, char *err,
                                  size_t errlen)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(obj, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(obj, "special_tokens");
    if (!cJSON_IsArray(single) || (specials && !cJSON_IsObject(specials)))
        return FAIL(ST_ERR_FORMAT, "TemplateProcessing needs a single array");
    int seen_seq = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single)
    {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            if (seen_seq)
                return FAIL(ST_ERR_FORMAT, "TemplateProcessing single has two sequences");
            seen_seq = 1;
            continue;
        }
        int bad = 0;
        const char *name = cJSON_IsObject(sp) ? tok_json_str(sp, "id", &bad) : NULL;
        const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
        if (!cJSON_IsArray(ids))
            return FAIL(ST_ERR_FORMAT, "TemplateProcessing item without a known special token");
        const cJSON *idv;
        cJSON_ArrayForEach(idv, ids)
        {
            long id;
            if (!tok_json_int(idv, 0, TOK_MAX_ID, &id) || !id_ok(tok, id))
                return FAIL(ST_ERR_FORMAT, "TemplateProcessing special token id out of range");
            int32_t v = (int32_t)id;
            if (ids_append(seen_seq ? post : pre, seen_seq ? n_post : n_pre, &v, 1, 0) != ST_OK)
                return FAIL(ST_ERR_NOMEM, "out of memory");
        }
    }
    if (!seen_seq)
        return FAIL(ST_ERR_FORMAT, "TemplateProcessing single has no sequence");
    return ST_OK;
}

static enum status parse_post(struct tokenizer *tok, const cJSON *obj, char *err, size_t errlen)
{
    if (!obj || cJSON_IsNull(obj))
        return ST_OK;
    const char *type = cJSON_IsObject(obj) ? tok_json_type(obj) : NULL;
    if (!type)
        return FAIL(ST_ERR_FORMAT, "post_processor without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "processors");
        if (!cJSON_IsArray(list))
            return FAIL(ST_ERR_FORMAT, "Sequence post_processor without a processors array");
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            enum status st = parse_post(tok, it, err, errlen);
            if (st != ST_OK)
                return st;
        }
        return ST_OK;
    }
    if (!strcmp(type, "ByteLevel"))
        return ST_OK; /* only adjusts offsets, which this engine does not report */
    int32_t *pre = NULL, *post = NULL;
    size_t n_pre = 0, n_post = 0;
    enum status st = ST_OK;
    if (!strcmp(type, "TemplateProcessing")) {
        st = parse_template(tok, obj, &pre, &n_pre, &post, &n_post, err, errlen);
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(obj, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(obj, "sep");
        long c, s;
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) ||
            !tok_json_int(cJSON_GetArrayItem(cls, 1), 0, TOK_MAX_ID, &c) ||
            !tok_json_int(cJSON_GetArrayItem(sep, 1), 0, TOK_MAX_ID, &s) || !id_ok(tok, c) ||
            !id_ok(tok, s))
            return FAIL(ST_ERR_FORMAT, "%s needs cls and sep [token, id] pairs", type);
        int32_t cv = (int32_t)c, sv = (int32_t)s;
        if (ids_append(&pre, &n_pre, &cv, 1, 0) != ST_OK ||
            ids_append(&post, &n_post, &sv, 1, 0) != ST_OK)
            st = FAIL(ST_ERR_NOMEM, "out of memory");
    } else {
        return FAIL(ST_ERR_UNSUPPORTED, "unsupported post_processor type '%s'", type);
    }
    /* A later processor wraps what the earlier ones produced. */
    if (st == ST_OK && (ids_append(&tok->post_pre, &tok->n_post_pre, pre, n_pre, 1) != ST_OK ||
                        ids_append(&tok->post_post, &tok->n_post_post, post, n_post, 0) != ST_OK))
        st = FAIL(ST_ERR_NOMEM, "out of memory");
    free(pre);
    free(post);
    return st;
}

/* ---- entry points ------------------------------------------------------------ */

enum status tok_parse_steps(struct tokenizer *tok, const cJSON *root, char *err, size_t errlen)
{
    enum status st =
        parse_normalizer(tok, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err, errlen);
    if (st == ST_OK)
        st =
            parse_pretok(tok, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err, errlen);
    if (st == ST_OK)
        st = parse_decoder(tok, cJSON_GetObjectItemCaseSensitive(root, "decoder"), err, errlen);
    if (st == ST_OK)
        st = parse_post(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err, errlen);
    return st;
}

void tok_steps_free(struct tokenizer *tok)
{
    for (size_t i = 0; i < tok->n_norms; i++) {
        tok_pattern_free(&tok->norms[i].pattern);
        free(tok->norms[i].content);
    }
    for (size_t i = 0; i < tok->n_pretoks; i++)
        tok_pattern_free(&tok->pretoks[i].pattern);
    for (size_t i = 0; i < tok->n_decoders; i++) {
        tok_pattern_free(&tok->decoders[i].pattern);
        free(tok->decoders[i].content);
    }
    free(tok->norms);
    free(tok->pretoks);
    free(tok->decoders);
    free(tok->post_pre);
    free(tok->post_post);
}

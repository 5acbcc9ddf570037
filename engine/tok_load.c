/*
 * tok_load.c - building a tokenizer from tokenizer.json (+ tokenizer_config.json):
 * vocabulary and merge tables, added tokens and their tries, the BPE model's
 * options, the config's special tokens, and the accessors.  The pipeline
 * steps are parsed by tok_steps.c.  Every field of the untrusted JSON is
 * type-checked before use.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define FAIL(st, ...) status_fail(err, errlen, st, __VA_ARGS__)

static enum status read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return FAIL(errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO, "cannot open %s: %s", path,
                    strerror(errno));
    struct tok_buf b = {0};
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (tok_buf_append(&b, chunk, got) != ST_OK) {
            fclose(f);
            tok_buf_free(&b);
            return FAIL(ST_ERR_NOMEM, "out of memory reading %s", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tok_buf_free(&b);
        return FAIL(ST_ERR_IO, "error reading %s", path);
    }
    if (tok_buf_append(&b, "", 0) != ST_OK) {
        tok_buf_free(&b);
        return FAIL(ST_ERR_NOMEM, "out of memory reading %s", path);
    }
    *data = b.data;
    *len = b.len;
    return ST_OK;
}

/* ---- string pool and hash tables ------------------------------------------- */

enum status tok_pool_add(struct tokenizer *tok, const char *s, size_t n, uint32_t *off)
{
    if (n >= UINT32_MAX / 2 || tok->pool_len + n + 1 >= UINT32_MAX)
        return ST_ERR_RANGE;
    if (tok->pool_cap - tok->pool_len < n + 1) {
        size_t cap = tok->pool_cap ? tok->pool_cap : 4096;
        while (cap - tok->pool_len < n + 1)
            cap *= 2;
        char *p = realloc(tok->pool, cap);
        if (!p)
            return ST_ERR_NOMEM;
        tok->pool = p;
        tok->pool_cap = cap;
    }
    *off = (uint32_t)tok->pool_len;
    memcpy(tok->pool + tok->pool_len, s, n);
    tok->pool[tok->pool_len + n] = '\0';
    tok->pool_len += n + 1;
    return ST_OK;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

static struct tok_vocab_slot *table_new(size_t n, size_t *cap)
{
    *cap = pow2_at_least(n * 2);
    struct tok_vocab_slot *t = malloc(*cap * sizeof(*t));
    if (t) {
        for (size_t i = 0; i < *cap; i++)
            t[i].id = -1;
    }
    return t;
}

/* Inserts or overwrites (a later duplicate string wins, as in HF). */
static void table_put(struct tokenizer *tok, struct tok_vocab_slot *t, size_t cap, uint32_t off,
                      uint32_t len, int32_t id)
{
    size_t mask = cap - 1;
    for (size_t i = tok_hash_bytes(tok->pool + off, len) & mask;; i = (i + 1) & mask) {
        if (t[i].id < 0 ||
            (t[i].len == len && memcmp(tok->pool + t[i].off, tok->pool + off, len) == 0)) {
            t[i] = (struct tok_vocab_slot){off, len, id};
            return;
        }
    }
}

static uint64_t merge_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static void merge_put(struct tokenizer *tok, int32_t l, int32_t r, int32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t mask = tok->merges_cap - 1;
    for (size_t i = merge_mix(key) & mask;; i = (i + 1) & mask) {
        struct tok_merge_slot *e = &tok->merges[i];
        if (e->key == UINT64_MAX || e->key == key) {
            *e = (struct tok_merge_slot){key, rank, new_id};
            return;
        }
    }
}

/* ---- tries over added tokens ---------------------------------------------- */

static void trie_free(struct tok_trie *t)
{
    free(t->keys);
    free(t->child);
    free(t->node_added);
    memset(t, 0, sizeof(*t));
}

static int32_t trie_edge(const struct tok_trie *t, uint32_t node, unsigned char c)
{
    uint64_t key = ((uint64_t)node << 8) | c;
    size_t mask = t->cap - 1;
    for (size_t i = merge_mix(key) & mask;; i = (i + 1) & mask) {
        if (t->keys[i] == UINT64_MAX)
            return -1;
        if (t->keys[i] == key)
            return (int32_t)t->child[i];
    }
}

static enum status trie_build(struct tokenizer *tok, struct tok_trie *t, int normalized)
{
    size_t bytes = 0;
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].normalized == (unsigned)normalized)
            bytes += tok->added[i].len;
    }
    t->nodes_cap = bytes + 1;
    t->cap = pow2_at_least(bytes * 2 + 2);
    t->keys = malloc(t->cap * sizeof(*t->keys));
    t->child = malloc(t->cap * sizeof(*t->child));
    t->node_added = malloc(t->nodes_cap * sizeof(*t->node_added));
    if (!t->keys || !t->child || !t->node_added)
        return ST_ERR_NOMEM;
    memset(t->keys, 0xff, t->cap * sizeof(*t->keys));
    t->n_nodes = 1;
    t->node_added[0] = -1;
    size_t mask = t->cap - 1;
    for (size_t k = 0; k < tok->n_added; k++) {
        const struct tok_added *a = &tok->added[k];
        if (a->normalized != (unsigned)normalized || a->len == 0)
            continue;
        const unsigned char *s = (const unsigned char *)tok->pool + a->off;
        t->first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
        uint32_t node = 0;
        for (uint32_t j = 0; j < a->len; j++) {
            int32_t next = trie_edge(t, node, s[j]);
            if (next < 0) {
                next = (int32_t)t->n_nodes++;
                t->node_added[next] = -1;
                uint64_t key = ((uint64_t)node << 8) | s[j];
                size_t i = merge_mix(key) & mask;
                while (t->keys[i] != UINT64_MAX)
                    i = (i + 1) & mask;
                t->keys[i] = key;
                t->child[i] = (uint32_t)next;
            }
            node = (uint32_t)next;
        }
        /* A later duplicate content wins, as in HF's added vocabulary. */
        t->node_added[node] = (int32_t)k;
    }
    return ST_OK;
}

int32_t tok_trie_match(const struct tokenizer *tok, const struct tok_trie *t, const char *text,
                       size_t n, size_t pos, int parse_special, size_t *match_len)
{
    const unsigned char *s = (const unsigned char *)text;
    if (t->n_nodes <= 1 || !(t->first[s[pos] >> 3] & (1u << (s[pos] & 7))))
        return -1;
    int32_t best = -1;
    uint32_t node = 0;
    for (size_t i = pos; i < n; i++) {
        int32_t next = trie_edge(t, node, s[i]);
        if (next < 0)
            break;
        node = (uint32_t)next;
        int32_t a = t->node_added[node];
        if (a >= 0 && (parse_special || !tok->added[a].special)) {
            best = a;
            *match_len = i + 1 - pos;
        }
    }
    return best;
}

/* ---- model ------------------------------------------------------------------ */

static enum status parse_vocab_and_added(struct tokenizer *tok, const struct tok_json_doc *doc,
                                         const cJSON *added, char *err, size_t errlen)
{
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return FAIL(ST_ERR_FORMAT, "added_tokens is not an array");
    long max_id = -1;
    size_t n_added = 0;
    for (size_t i = 0; i < doc->n_vocab; i++) {
        if (doc->vocab[i].id >= TOK_MAX_ID)
            return FAIL(ST_ERR_FORMAT, "vocab entry '%.40s' has id %d, beyond the limit",
                        tok->pool + doc->vocab[i].off, (int)doc->vocab[i].id);
        max_id = doc->vocab[i].id > max_id ? doc->vocab[i].id : max_id;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, added)
    {
        long id;
        int bad = 0;
        if (!cJSON_IsObject(it) ||
            !tok_json_int(cJSON_GetObjectItemCaseSensitive(it, "id"), 0, TOK_MAX_ID - 1, &id) ||
            !tok_json_str(it, "content", &bad) || bad)
            return FAIL(ST_ERR_FORMAT, "added token %zu needs an id and a content string", n_added);
        max_id = id > max_id ? id : max_id;
        n_added++;
    }
    tok->vocab_size = (int32_t)(max_id + 1);
    tok->id_str = malloc((size_t)(max_id + 1) * sizeof(*tok->id_str) + 1);
    tok->id_flags = calloc((size_t)max_id + 2, 1);
    tok->vocab = table_new(doc->n_vocab, &tok->vocab_cap);
    tok->added_map = table_new(n_added, &tok->added_map_cap);
    tok->added = calloc(n_added + 1, sizeof(*tok->added));
    if (!tok->id_str || !tok->id_flags || !tok->vocab || !tok->added_map || !tok->added)
        return FAIL(ST_ERR_NOMEM, "out of memory for a vocabulary of %ld", max_id + 1);
    for (long i = 0; i <= max_id; i++)
        tok->id_str[i] = (struct tok_str){0, UINT32_MAX};
    for (size_t i = 0; i < doc->n_vocab; i++) {
        const struct tok_json_vocab *v = &doc->vocab[i];
        table_put(tok, tok->vocab, tok->vocab_cap, v->off, v->len, v->id);
        tok->id_str[v->id] = (struct tok_str){v->off, v->len};
        tok->id_flags[v->id] |= TOK_ID_PRESENT;
    }
    cJSON_ArrayForEach(it, added)
    {
        int bad = 0;
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        const char *content = tok_json_str(it, "content", &bad);
        struct tok_added *a = &tok->added[tok->n_added++];
        a->id = id;
        a->len = (uint32_t)strlen(content);
        if (tok_pool_add(tok, content, a->len, &a->off) != ST_OK)
            return FAIL(ST_ERR_NOMEM, "out of memory");
        a->special = (unsigned)tok_json_bool(it, "special", 0, &bad);
        a->lstrip = (unsigned)tok_json_bool(it, "lstrip", 0, &bad);
        a->rstrip = (unsigned)tok_json_bool(it, "rstrip", 0, &bad);
        a->single_word = (unsigned)tok_json_bool(it, "single_word", 0, &bad);
        /* HF's default: special tokens are matched on the raw text. */
        a->normalized = (unsigned)tok_json_bool(it, "normalized", !a->special, &bad);
        if (bad)
            return FAIL(ST_ERR_FORMAT, "added token %d has a bad flag", id);
        table_put(tok, tok->added_map, tok->added_map_cap, a->off, a->len, id);
        tok->id_str[id] = (struct tok_str){a->off, a->len};
        tok->id_flags[id] |= TOK_ID_PRESENT;
        if (a->special)
            tok->id_flags[id] |= TOK_ID_SPECIAL;
        else
            tok->id_flags[id] &= (uint8_t)~TOK_ID_SPECIAL;
    }
    return ST_OK;
}

static enum status merges_grow(struct tokenizer *tok)
{
    size_t old_cap = tok->merges_cap, cap = old_cap ? old_cap * 2 : 1024;
    struct tok_merge_slot *old = tok->merges;
    tok->merges = malloc(cap * sizeof(*tok->merges));
    if (!tok->merges) {
        tok->merges = old;
        return ST_ERR_NOMEM;
    }
    memset(tok->merges, 0xff, cap * sizeof(*tok->merges));
    tok->merges_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != UINT64_MAX)
            merge_put(tok, (int32_t)(old[i].key >> 32), (int32_t)(uint32_t)old[i].key, old[i].rank,
                      old[i].new_id);
    }
    free(old);
    return ST_OK;
}

static enum status parse_merges(struct tokenizer *tok, const struct tok_json_doc *doc,
                                const cJSON *model, char *err, size_t errlen)
{
    const cJSON *other = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (other && !cJSON_IsNull(other))
        return FAIL(ST_ERR_FORMAT, "model.merges is not an array");
    if (!doc->merges)
        return ST_OK;
    struct tok_json_merges it = {doc->merges, doc->merges + doc->merges_len, 0};
    struct tok_buf a = {0}, b = {0}, joined = {0};
    enum status st = ST_OK;
    size_t n = 0;
    for (int32_t rank = 0;; rank++) {
        int done;
        st = tok_json_merges_next(&it, &a, &b, &done);
        if (st != ST_OK) {
            st = st == ST_ERR_NOMEM
                     ? FAIL(st, "out of memory")
                     : FAIL(st, "merge %d is neither \"a b\" nor [\"a\", \"b\"]", rank);
            break;
        }
        if (done)
            break;
        joined.len = 0;
        if (tok_buf_append(&joined, a.data, a.len) != ST_OK ||
            tok_buf_append(&joined, b.data, b.len) != ST_OK ||
            ((n + 1) * 2 > tok->merges_cap && merges_grow(tok) != ST_OK)) {
            st = FAIL(ST_ERR_NOMEM, "out of memory");
            break;
        }
        int32_t ia = tok_vocab_find(tok, tok->vocab, tok->vocab_cap, a.data, a.len);
        int32_t ib = tok_vocab_find(tok, tok->vocab, tok->vocab_cap, b.data, b.len);
        int32_t ij = tok_vocab_find(tok, tok->vocab, tok->vocab_cap, joined.data, joined.len);
        if (ia < 0 || ib < 0 || ij < 0) {
            st = FAIL(ST_ERR_FORMAT, "merge %d uses a token missing from the vocabulary", rank);
            break;
        }
        merge_put(tok, ia, ib, rank, ij);
        n++;
    }
    tok_buf_free(&a);
    tok_buf_free(&b);
    tok_buf_free(&joined);
    return st;
}

static enum status parse_model(struct tokenizer *tok, const struct tok_json_doc *doc, char *err,
                               size_t errlen)
{
    const cJSON *root = doc->root;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return FAIL(ST_ERR_FORMAT, "tokenizer.json has no model object");
    const char *type = tok_json_type(model);
    if (type && strcmp(type, "BPE"))
        return FAIL(ST_ERR_UNSUPPORTED, "unsupported tokenizer model type '%s'", type);
    if (!type && !doc->merges)
        return FAIL(ST_ERR_UNSUPPORTED, "tokenizer model without a type is not BPE");
    if (!doc->has_vocab)
        return FAIL(ST_ERR_FORMAT, "model.vocab is not an object");
    enum status st = parse_vocab_and_added(
        tok, doc, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err, errlen);
    if (st != ST_OK)
        return st;
    int bad = 0;
    const char *prefix = tok_json_str(model, "continuing_subword_prefix", &bad);
    const char *suffix = tok_json_str(model, "end_of_word_suffix", &bad);
    if ((prefix && *prefix) || (suffix && *suffix))
        return FAIL(ST_ERR_UNSUPPORTED, "BPE subword prefix/suffix is not supported");
    tok->fuse_unk = tok_json_bool(model, "fuse_unk", 0, &bad);
    tok->byte_fallback = tok_json_bool(model, "byte_fallback", 0, &bad);
    tok->ignore_merges = tok_json_bool(model, "ignore_merges", 0, &bad);
    const char *unk = tok_json_str(model, "unk_token", &bad);
    if (bad)
        return FAIL(ST_ERR_FORMAT, "bad field in the BPE model");
    tok->unk_id = unk ? tok_vocab_find(tok, tok->vocab, tok->vocab_cap, unk, strlen(unk)) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        tok->byte_ids[b] = tok_vocab_find(tok, tok->vocab, tok->vocab_cap, name, 6);
    }
    return parse_merges(tok, doc, model, err, errlen);
}

/* ---- tokenizer_config.json --------------------------------------------------- */

/* bos_token / eos_token are a string or an AddedToken object {"content": ...}. */
static enum status config_token(const cJSON *cfg, const char *key, char **out, char *err,
                                size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    const char *s = "";
    if (cJSON_IsString(v) && v->valuestring)
        s = v->valuestring;
    else if (v && !cJSON_IsNull(v))
        return FAIL(ST_ERR_FORMAT, "tokenizer_config.json %s is not a string", key);
    size_t n;
    if (tok_strdup(s, out, &n) != ST_OK)
        return FAIL(ST_ERR_NOMEM, "out of memory");
    return ST_OK;
}

/*
 * transformers' Llama and Gemma tokenizer classes rebuild the post-processor
 * from add_bos_token / add_eos_token (defaults true / false) and ignore the one
 * in tokenizer.json; mlx-lm tokenizes through them, so follow suit.
 */
static int config_rebuilds_template(const cJSON *cfg)
{
    static const char *const classes[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                          "GemmaTokenizer",     "GemmaTokenizerFast",
                                          "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"};
    int bad = 0;
    const char *cls = tok_json_str(cfg, "tokenizer_class", &bad);
    for (size_t i = 0; cls && i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (!strcmp(cls, classes[i]))
            return 1;
    }
    return 0;
}

static enum status rebuild_template(struct tokenizer *tok, int add_bos, int add_eos, int32_t eos,
                                    char *err, size_t errlen)
{
    if ((add_bos && tok->bos_id < 0) || (add_eos && eos < 0))
        return FAIL(ST_ERR_FORMAT, "add_%s_token is set but %s_token is not in the vocabulary",
                    add_bos ? "bos" : "eos", add_bos ? "bos" : "eos");
    int32_t *pre = add_bos ? malloc(sizeof(*pre)) : NULL;
    int32_t *post = add_eos ? malloc(sizeof(*post)) : NULL;
    if ((add_bos && !pre) || (add_eos && !post)) {
        free(pre);
        free(post);
        return FAIL(ST_ERR_NOMEM, "out of memory");
    }
    if (pre)
        pre[0] = tok->bos_id;
    if (post)
        post[0] = eos;
    free(tok->post_pre);
    free(tok->post_post);
    tok->post_pre = pre;
    tok->post_post = post;
    tok->n_post_pre = add_bos ? 1 : 0;
    tok->n_post_post = add_eos ? 1 : 0;
    return ST_OK;
}

static enum status parse_config(struct tokenizer *tok, const char *config, size_t config_len,
                                char *err, size_t errlen)
{
    cJSON *cfg = NULL;
    if (config) {
        cfg = cJSON_ParseWithLength(config, config_len);
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            return FAIL(ST_ERR_FORMAT, "tokenizer_config.json is not a JSON object");
        }
    }
    enum status st = config_token(cfg, "bos_token", &tok->bos_token, err, errlen);
    if (st == ST_OK)
        st = config_token(cfg, "eos_token", &tok->eos_token, err, errlen);
    int bad = 0;
    tok->clean_up = tok_json_bool(cfg, "clean_up_tokenization_spaces", 0, &bad);
    int rebuild = config_rebuilds_template(cfg);
    int add_bos = tok_json_bool(cfg, "add_bos_token", 1, &bad);
    int add_eos = tok_json_bool(cfg, "add_eos_token", 0, &bad);
    cJSON_Delete(cfg);
    if (st != ST_OK)
        return st;
    if (bad)
        return FAIL(ST_ERR_FORMAT, "tokenizer_config.json has a non-boolean flag");
    tok->bos_id =
        *tok->bos_token ? tok_token_to_id(tok, tok->bos_token, strlen(tok->bos_token)) : -1;
    int32_t eos =
        *tok->eos_token ? tok_token_to_id(tok, tok->eos_token, strlen(tok->eos_token)) : -1;
    if (eos >= 0 && tok_add_eos_id(tok, eos) != ST_OK)
        return FAIL(ST_ERR_NOMEM, "out of memory");
    return rebuild ? rebuild_template(tok, add_bos, add_eos, eos, err, errlen) : ST_OK;
}

/* ---- public entry points ------------------------------------------------------ */

enum status tok_load_from_memory(const char *json, size_t json_len, const char *config,
                                 size_t config_len, struct tokenizer **out, char *err,
                                 size_t errlen)
{
    *out = NULL;
    if (!json)
        return FAIL(ST_ERR_INVALID, "no tokenizer.json text");
    struct tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok)
        return FAIL(ST_ERR_NOMEM, "out of memory");
    tok->bos_id = -1;
    struct tok_json_doc doc;
    enum status st = tok_json_scan(tok, json, json_len, &doc);
    if (st != ST_OK) {
        tok_free(tok);
        return FAIL(st, "tokenizer.json is not a well-formed JSON object%s",
                    st == ST_ERR_NOMEM ? " (out of memory)" : "");
    }
    const cJSON *root = doc.root;
    st = parse_model(tok, &doc, err, errlen);
    if (st == ST_OK && ((st = trie_build(tok, &tok->trie_raw, 0)) != ST_OK ||
                        (st = trie_build(tok, &tok->trie_norm, 1)) != ST_OK))
        FAIL(st, "out of memory");
    if (st == ST_OK)
        st = tok_parse_steps(tok, root, err, errlen);
    tok_json_doc_free(&doc);
    if (st == ST_OK)
        st = parse_config(tok, config, config_len, err, errlen);
    if (st != ST_OK) {
        tok_free(tok);
        return st;
    }
    *out = tok;
    return ST_OK;
}

enum status tok_load(const char *dir, struct tokenizer **out, char *err, size_t errlen)
{
    char path[4096];
    char *json = NULL, *config = NULL;
    size_t json_len = 0, config_len = 0;
    *out = NULL;
    if (snprintf(path, sizeof(path), "%s/tokenizer.json", dir) >= (int)sizeof(path))
        return FAIL(ST_ERR_RANGE, "model directory path too long");
    enum status st = read_file(path, &json, &json_len, err, errlen);
    if (st != ST_OK)
        return st;
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    st = read_file(path, &config, &config_len, err, errlen);
    if (st == ST_ERR_NOT_FOUND) {
        config = NULL;
        st = ST_OK;
    }
    if (st == ST_OK)
        st = tok_load_from_memory(json, json_len, config, config_len, out, err, errlen);
    free(json);
    free(config);
    return st;
}

void tok_free(struct tokenizer *tok)
{
    if (!tok)
        return;
    tok_steps_free(tok);
    trie_free(&tok->trie_raw);
    trie_free(&tok->trie_norm);
    free(tok->pool);
    free(tok->id_str);
    free(tok->id_flags);
    free(tok->vocab);
    free(tok->added_map);
    free(tok->merges);
    free(tok->added);
    free(tok->bos_token);
    free(tok->eos_token);
    free(tok->eos_ids);
    free(tok);
}

/* ---- accessors ------------------------------------------------------------------ */

int32_t tok_vocab_size(const struct tokenizer *tok)
{
    return tok->vocab_size;
}

const char *tok_id_to_token(const struct tokenizer *tok, int32_t id)
{
    size_t len;
    return tok_str_of(tok, id, &len);
}

int32_t tok_token_to_id(const struct tokenizer *tok, const char *token, size_t len)
{
    int32_t id = tok_vocab_find(tok, tok->added_map, tok->added_map_cap, token, len);
    return id >= 0 ? id : tok_vocab_find(tok, tok->vocab, tok->vocab_cap, token, len);
}

int tok_is_special(const struct tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->vocab_size && (tok->id_flags[id] & TOK_ID_SPECIAL);
}

int32_t tok_bos_id(const struct tokenizer *tok)
{
    return tok->bos_id;
}

int tok_adds_bos(const struct tokenizer *tok)
{
    return tok->bos_id >= 0 && tok->n_post_pre > 0 && tok->post_pre[0] == tok->bos_id;
}

const char *tok_bos_token(const struct tokenizer *tok)
{
    return tok->bos_token;
}

const char *tok_eos_token(const struct tokenizer *tok)
{
    return tok->eos_token;
}

size_t tok_eos_ids(const struct tokenizer *tok, const int32_t **ids)
{
    *ids = tok->eos_ids;
    return tok->n_eos;
}

int tok_is_eos(const struct tokenizer *tok, int32_t id)
{
    for (size_t i = 0; i < tok->n_eos; i++) {
        if (tok->eos_ids[i] == id)
            return 1;
    }
    return 0;
}

enum status tok_add_eos_id(struct tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->vocab_size)
        return ST_ERR_RANGE;
    if (tok_is_eos(tok, id))
        return ST_OK;
    if (tok->n_eos == tok->eos_cap) {
        size_t cap = tok->eos_cap ? tok->eos_cap * 2 : 4;
        int32_t *v = realloc(tok->eos_ids, cap * sizeof(*v));
        if (!v)
            return ST_ERR_NOMEM;
        tok->eos_ids = v;
        tok->eos_cap = cap;
    }
    tok->eos_ids[tok->n_eos++] = id;
    return ST_OK;
}

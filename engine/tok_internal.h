/*
 * tok_internal.h - private structures shared by the tok_*.c files that
 * implement tokenizer.h.  Not part of the engine's public API.
 *
 * Everything hanging off a `struct tokenizer` is built once by tok_load.c and
 * read-only afterwards; per-call scratch lives in the callers' stack frames or
 * in buffers they allocate.
 */
#ifndef ENGINE_TOK_INTERNAL_H
#define ENGINE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tokenizer.h"

/* ---- growable byte buffer and piece lists -------------------------------- */

struct tok_buf {
    char *data;
    size_t len, cap;
};

enum status tok_buf_reserve(struct tok_buf *b, size_t extra);
enum status tok_buf_append(struct tok_buf *b, const char *s, size_t n);
void tok_buf_free(struct tok_buf *b);
enum status tok_strdup(const char *s, char **out, size_t *len);

/* A list of byte strings stored back to back in one buffer. */
struct tok_pieces {
    struct tok_buf buf;
    size_t *off, *len;
    size_t n, cap;
};

enum status tok_pieces_add(struct tok_pieces *p, const char *s, size_t n);
void tok_pieces_clear(struct tok_pieces *p);
void tok_pieces_free(struct tok_pieces *p);

/* ---- UTF-8 --------------------------------------------------------------- */

/*
 * Decodes one character at s[0..n).  Returns its length and sets *cp, or
 * returns -(length of the maximal invalid subpart) (always <= -1).
 */
int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
int tok_utf8_valid(const char *s, size_t n);
int tok_utf8_encode(uint32_t cp, char out[4]);
/* Appends s to b, replacing each maximal invalid subpart with U+FFFD. */
enum status tok_utf8_append_lossy(struct tok_buf *b, const char *s, size_t n);

/* GPT-2 byte-level alphabet: byte -> code point and back (-1 if none). */
uint32_t tok_byte_to_cp(unsigned char b);
int tok_cp_to_byte(uint32_t cp);

/* ---- patterns (Split, Replace) ------------------------------------------- */

struct tok_pattern {
    char *str; /* literal pattern when re == NULL */
    size_t len;
    pcre2_code *re;
};

/* One span of a string: a match of the pattern or the text between matches. */
struct tok_span {
    size_t start, end;
    int is_match;
};

enum status tok_pattern_init(struct tok_pattern *p, const char *src, size_t len, int is_regex,
                             char *err, size_t errlen);
void tok_pattern_free(struct tok_pattern *p);
/*
 * Splits s into spans (matches and gaps, covering all of s, no empty ones).
 * *spans is realloc()ed by the call; *cap is its capacity.
 */
enum status tok_pattern_spans(const struct tok_pattern *p, const char *s, size_t n,
                              struct tok_span **spans, size_t *n_spans, size_t *cap);

/* ---- pipeline steps ------------------------------------------------------ */

enum tok_norm_kind {
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_PREPEND,
    TOK_NORM_REPLACE,
    TOK_NORM_STRIP,
};

struct tok_normalizer {
    enum tok_norm_kind kind;
    struct tok_pattern pattern; /* REPLACE */
    char *content;              /* PREPEND text, REPLACE replacement */
    size_t content_len;
    int strip_left, strip_right; /* STRIP */
};

enum tok_pretok_kind {
    TOK_PRETOK_SPLIT,
    TOK_PRETOK_BYTELEVEL,
    TOK_PRETOK_METASPACE,
    TOK_PRETOK_WHITESPACE_SPLIT,
};

enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
};

enum tok_prepend_scheme { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

struct tok_pretok {
    enum tok_pretok_kind kind;
    struct tok_pattern pattern; /* SPLIT, and BYTELEVEL with use_regex */
    enum tok_split_behavior behavior;
    int invert;
    int add_prefix_space, use_regex; /* BYTELEVEL */
    char replacement[5];             /* METASPACE, UTF-8 */
    enum tok_prepend_scheme prepend; /* METASPACE */
    int split;                       /* METASPACE */
};

enum tok_decoder_kind {
    TOK_DEC_BYTELEVEL,
    TOK_DEC_REPLACE,
    TOK_DEC_BYTEFALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_METASPACE,
};

struct tok_decoder {
    enum tok_decoder_kind kind;
    struct tok_pattern pattern; /* REPLACE */
    char *content;              /* REPLACE replacement, STRIP character */
    size_t content_len;
    int start, stop;                 /* STRIP */
    char replacement[5];             /* METASPACE */
    enum tok_prepend_scheme prepend; /* METASPACE */
};

/* ---- vocabulary and merges ---------------------------------------------- */

struct tok_str {
    uint32_t off, len; /* into tokenizer.pool; len == UINT32_MAX: no string */
};

struct tok_vocab_slot {
    uint32_t off, len;
    int32_t id; /* -1: empty slot */
};

struct tok_merge_slot {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX: empty */
    int32_t rank, new_id;
};

struct tok_added {
    int32_t id;
    uint32_t off, len;
    unsigned special : 1, lstrip : 1, rstrip : 1, single_word : 1, normalized : 1;
};

/* A byte trie over added-token contents, for leftmost-longest matching. */
struct tok_trie {
    uint64_t *keys; /* (node << 8) | byte; UINT64_MAX: empty */
    uint32_t *child;
    size_t cap;          /* power of two */
    int32_t *node_added; /* per node: index into tokenizer.added, or -1 */
    size_t n_nodes, nodes_cap;
    uint8_t first[32]; /* bitmap of first bytes */
};

struct tokenizer {
    char *pool; /* every token string, NUL-terminated */
    size_t pool_len, pool_cap;

    struct tok_str *id_str; /* [vocab_size] */
    uint8_t *id_flags;      /* [vocab_size] TOK_ID_* */
    int32_t vocab_size;

    struct tok_vocab_slot *vocab; /* string -> id for the model vocab */
    size_t vocab_cap;
    struct tok_vocab_slot *added_map; /* string -> id for added tokens */
    size_t added_map_cap;

    struct tok_merge_slot *merges;
    size_t merges_cap;

    int32_t unk_id;
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256]; /* <0xXX> tokens, -1 if missing */

    struct tok_added *added;
    size_t n_added;
    struct tok_trie trie_raw, trie_norm;

    struct tok_normalizer *norms;
    size_t n_norms;
    struct tok_pretok *pretoks;
    size_t n_pretoks;
    struct tok_decoder *decoders;
    size_t n_decoders;
    int has_decoder;

    int32_t *post_pre, *post_post; /* ids the post-processor puts around a sequence */
    size_t n_post_pre, n_post_post;

    char *bos_token, *eos_token;
    int32_t bos_id;
    int32_t *eos_ids;
    size_t n_eos, eos_cap;
    int clean_up;
};

enum { TOK_ID_PRESENT = 1, TOK_ID_SPECIAL = 2 };

/* Hash-table lookups; -1 when absent. */
int32_t tok_vocab_find(const struct tokenizer *tok, const struct tok_vocab_slot *table, size_t cap,
                       const char *s, size_t n);
uint64_t tok_hash_bytes(const char *s, size_t n);
int tok_merge_find(const struct tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                   int32_t *new_id);

/* Trie matching: the longest added token at text[pos..], or -1 (index into tok->added). */
int32_t tok_trie_match(const struct tokenizer *tok, const struct tok_trie *t, const char *text,
                       size_t n, size_t pos, int parse_special, size_t *match_len);

/* ---- tokenizer.json scanning (tok_json.c) ---------------------------------- */

#include <cJSON.h>

struct tok_json_vocab {
    uint32_t off, len; /* into tokenizer.pool */
    int32_t id;
};

/* tokenizer.json as a cJSON tree without model.vocab / model.merges, plus those two. */
struct tok_json_doc {
    cJSON *root;
    struct tok_json_vocab *vocab;
    size_t n_vocab;
    int has_vocab;      /* model.vocab was an object (else it is in root, if present) */
    const char *merges; /* the model.merges array's text in the input, or NULL */
    size_t merges_len;
};

enum status tok_json_scan(struct tokenizer *tok, const char *json, size_t len,
                          struct tok_json_doc *doc);
void tok_json_doc_free(struct tok_json_doc *doc);

/* Iterates over the merges array: "a b" strings or ["a", "b"] pairs. */
struct tok_json_merges {
    const char *p, *end;
    int started;
};
enum status tok_json_merges_next(struct tok_json_merges *it, struct tok_buf *a, struct tok_buf *b,
                                 int *done);

/* Typed members of a cJSON object; *bad is set when present with the wrong type. */
const char *tok_json_str(const cJSON *obj, const char *key, int *bad);
int tok_json_bool(const cJSON *obj, const char *key, int dflt, int *bad);
/* The "type" string member of a step object, or NULL. */
const char *tok_json_type(const cJSON *obj);
/* Whether v is an integer in [lo, hi] (then stored in *out). */
int tok_json_int(const cJSON *v, long lo, long hi, long *out);

/* Parses normalizer, pre_tokenizer, decoder and post_processor (tok_steps.c). */
enum status tok_parse_steps(struct tokenizer *tok, const cJSON *root, char *err, size_t errlen);
void tok_steps_free(struct tokenizer *tok);

/* Ids beyond this are rejected: no real vocabulary comes close. */
#define TOK_MAX_ID (1 << 24)

/* Appends a NUL-terminated copy of s to the pool. */
enum status tok_pool_add(struct tokenizer *tok, const char *s, size_t n, uint32_t *off);

/* ---- pipeline entry points (tok_normalize.c, tok_pretok.c, tok_bpe.c) ----- */

enum status tok_normalize(const struct tokenizer *tok, const char *s, size_t n,
                          struct tok_buf *out);
/* Pre-tokenizes `s` (a section of the text; first: it starts the input) into out. */
enum status tok_pretokenize(const struct tokenizer *tok, const char *s, size_t n, int first,
                            struct tok_pieces *out);

struct tok_bpe_scratch; /* per-call BPE working memory */
struct tok_bpe_scratch *tok_bpe_scratch_new(void);
void tok_bpe_scratch_free(struct tok_bpe_scratch *sc);
/* Appends the ids of one pre-token word to *ids (realloc()ed, capacity *cap). */
enum status tok_bpe_word(const struct tokenizer *tok, struct tok_bpe_scratch *sc, const char *w,
                         size_t n, int32_t **ids, size_t *n_ids, size_t *cap);

static inline const char *tok_str_of(const struct tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->vocab_size || tok->id_str[id].len == UINT32_MAX)
        return NULL;
    *len = tok->id_str[id].len;
    return tok->pool + tok->id_str[id].off;
}

#endif

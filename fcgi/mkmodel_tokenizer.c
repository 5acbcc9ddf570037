/*
 * mkmodel_tokenizer.c - tokenizer files for mkmodel's random-weight models
 * (see mkmodel.h).
 *
 * The synthetic tokenizer is a byte-level BPE in the Qwen2 / Llama 3 form
 * that the Hugging Face tokenizers library loads: a Split regex then
 * ByteLevel pre-tokenizer, the 256 byte tokens spelled in GPT-2's
 * byte-to-unicode alphabet (ids in GPT-2's order), then merges.  The merges
 * are real BPE training on a small built-in English text (so common words
 * become single tokens and encoding exercises merge ranks), followed by
 * synthetic merges that extend letter tokens one letter at a time until the
 * vocabulary is full.  Every merge's two parts and its result are in the
 * vocabulary, and a merge never comes before the merges that build its
 * parts.  The special tokens sit at the top of the id range as added tokens.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "mkmodel.h"

/* Text for the learned merges: plain prose about the things this project
 * does, so the frequent pairs are ordinary English ones. */
static const char mkmodel_corpus[] =
    "The quick brown fox jumps over the lazy dog. A model reads the text one token at a time, "
    "and the tokenizer turns the words into numbers that the model can use. When the model "
    "answers a question, it writes one token after another until it reaches the end of the "
    "turn. The server keeps the models on the disk and loads them into memory when a request "
    "comes in. Small models are fast and large models are slow, but the large ones know more "
    "about the world. We test the engine with models that have random weights: they say "
    "nothing useful, yet they have the same shape as the real ones, so every part of the "
    "program can be checked. There is a time for work and a time for rest. The people in the "
    "town went to the market in the morning and came back in the evening with bread, fruit "
    "and fish. She said that the weather would be better tomorrow, and he thought that she "
    "was right. It is important to write clear code, to test it well, and to think about "
    "what could go wrong. Hello world! How are you today? I am fine, thank you. This is the "
    "first line of the story, and this is the second one. Numbers like 1, 2, 3 and 2024 "
    "appear in text too.\n";

/* Letters in English frequency order: the synthetic merges' alphabet. */
static const char mkmodel_letters[] = "etaoinsrhldcumfpgwybvkxjqz";

#define MKMODEL_MAX_VOCAB (1u << 22)

/* ---- the vocabulary: id -> string, string -> id ---- */

struct vocab {
    struct arena strings;
    char **str; /* (n) token strings, UTF-8 */
    size_t n, cap;
    int32_t *slots; /* open addressing, -1 = empty */
    size_t nslots;
    int32_t (*merges)[2]; /* (n_merges) left, right */
    size_t n_merges, cap_merges;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int32_t vocab_find(const struct vocab *v, const char *s)
{
    size_t mask = v->nslots - 1;
    for (size_t i = (size_t)hash_str(s) & mask;; i = (i + 1) & mask) {
        int32_t id = v->slots[i];
        if (id < 0 || !strcmp(v->str[id], s))
            return id;
    }
}

/* Adds s (copied) unless present; returns its id, or -1 when out of memory. */
static int32_t vocab_add(struct vocab *v, const char *s)
{
    int32_t id = vocab_find(v, s);
    if (id >= 0)
        return id;
    if (v->n == v->cap)
        return -1;
    char *copy = arena_strdup(&v->strings, s);
    if (!copy)
        return -1;
    id = (int32_t)v->n++;
    v->str[id] = copy;
    size_t mask = v->nslots - 1;
    size_t i = (size_t)hash_str(s) & mask;
    while (v->slots[i] >= 0)
        i = (i + 1) & mask;
    v->slots[i] = id;
    return id;
}

static bool vocab_init(struct vocab *v, size_t cap)
{
    memset(v, 0, sizeof(*v));
    arena_init(&v->strings, 1u << 20, 0);
    v->cap = cap;
    v->nslots = 1024;
    while (v->nslots < 2 * cap)
        v->nslots *= 2;
    v->str = calloc(cap, sizeof(*v->str));
    v->slots = malloc(v->nslots * sizeof(*v->slots));
    v->cap_merges = cap;
    v->merges = malloc(cap * sizeof(*v->merges));
    if (!v->str || !v->slots || !v->merges)
        return false;
    memset(v->slots, 0xff, v->nslots * sizeof(*v->slots));
    return true;
}

static void vocab_free(struct vocab *v)
{
    arena_free(&v->strings);
    free(v->str);
    free(v->slots);
    free(v->merges);
}

/* Records merge (a, b) -> a+b, adding the result; returns its id or -1. */
static int32_t vocab_merge(struct vocab *v, int32_t a, int32_t b)
{
    char buf[512];
    if ((size_t)snprintf(buf, sizeof(buf), "%s%s", v->str[a], v->str[b]) >= sizeof(buf))
        return -1;
    if (v->n_merges == v->cap_merges)
        return -1;
    int32_t id = vocab_add(v, buf);
    if (id < 0)
        return -1;
    v->merges[v->n_merges][0] = a;
    v->merges[v->n_merges][1] = b;
    v->n_merges++;
    return id;
}

/* ---- GPT-2 byte alphabet ---- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the rest map to U+0100 upwards in byte order.  byte_id[b] is the id of
 * byte b's token; ids follow GPT-2's order (the printable bytes first). */
static bool add_byte_tokens(struct vocab *v, int32_t byte_id[256])
{
    unsigned cp[256];
    bool printable[256] = {false};
    int order[256], n = 0;
    for (int b = 0; b < 256; b++) {
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        if (printable[b]) {
            cp[b] = (unsigned)b;
            order[n++] = b;
        }
    }
    unsigned next = 256;
    for (int b = 0; b < 256; b++) {
        if (!printable[b]) {
            cp[b] = next++;
            order[n++] = b;
        }
    }
    for (int i = 0; i < 256; i++) {
        int b = order[i];
        char s[4] = {0};
        if (cp[b] < 0x80) {
            s[0] = (char)cp[b];
        } else {
            s[0] = (char)(0xc0 | (cp[b] >> 6));
            s[1] = (char)(0x80 | (cp[b] & 0x3f));
        }
        byte_id[b] = vocab_add(v, s);
        if (byte_id[b] < 0)
            return false;
    }
    return true;
}

/* ---- learned merges ---- */

struct chunk {
    int32_t *ids; /* (len) */
    size_t len;
    size_t count; /* occurrences in the corpus */
};

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Splits the corpus the way the Split regex would for ASCII prose: an
 * optional space plus letters, single digits, an optional space plus
 * punctuation, runs of whitespace.  Identical pieces are counted once. */
static size_t corpus_chunks(struct chunk *out, size_t max, const int32_t byte_id[256])
{
    const char *t = mkmodel_corpus;
    size_t n = 0, i = 0, len = strlen(t);
    while (i < len && n < max) {
        size_t start = i;
        if (t[i] == ' ' && i + 1 < len && !is_digit(t[i + 1]) && t[i + 1] != ' ' &&
            t[i + 1] != '\n')
            i++;
        if (is_alpha(t[i])) {
            while (i < len && is_alpha(t[i]))
                i++;
        } else if (is_digit(t[i])) {
            i++;
        } else if (t[i] == ' ' || t[i] == '\n') {
            while (i < len && (t[i] == ' ' || t[i] == '\n'))
                i++;
        } else {
            while (i < len && !is_alpha(t[i]) && !is_digit(t[i]) && t[i] != ' ' && t[i] != '\n')
                i++;
        }
        size_t k;
        for (k = 0; k < n; k++) {
            if (out[k].len != i - start)
                continue;
            size_t j = 0;
            while (j < out[k].len && out[k].ids[j] == byte_id[(unsigned char)t[start + j]])
                j++;
            if (j == out[k].len)
                break;
        }
        if (k < n) {
            out[k].count++;
            continue;
        }
        out[n].ids = malloc((i - start) * sizeof(int32_t));
        if (!out[n].ids)
            return n;
        for (size_t j = start; j < i; j++)
            out[n].ids[j - start] = byte_id[(unsigned char)t[j]];
        out[n].len = i - start;
        out[n].count = 1;
        n++;
    }
    return n;
}

struct pair_count {
    int32_t a, b;
    size_t count;
};

static int cmp_pair(const void *x, const void *y)
{
    const struct pair_count *p = x, *q = y;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

/* Classic BPE training: repeatedly merge the most frequent adjacent pair
 * (ties: the lowest ids) while it occurs at least twice. */
static bool learn_merges(struct vocab *v, size_t budget, const int32_t byte_id[256])
{
    enum { MAX_CHUNKS = 1024 };
    struct chunk *chunks = calloc(MAX_CHUNKS, sizeof(*chunks));
    size_t total = 0;
    if (!chunks)
        return false;
    size_t n = corpus_chunks(chunks, MAX_CHUNKS, byte_id);
    for (size_t c = 0; c < n; c++)
        total += chunks[c].len;
    struct pair_count *pairs = malloc((total + 1) * sizeof(*pairs));
    bool ok = pairs != NULL;
    while (ok && v->n < budget) {
        size_t np = 0;
        for (size_t c = 0; c < n; c++) {
            for (size_t j = 0; j + 1 < chunks[c].len; j++)
                pairs[np++] =
                    (struct pair_count){chunks[c].ids[j], chunks[c].ids[j + 1], chunks[c].count};
        }
        if (np == 0)
            break;
        qsort(pairs, np, sizeof(*pairs), cmp_pair);
        struct pair_count best = {0, 0, 0};
        for (size_t j = 0; j < np;) {
            struct pair_count run = pairs[j];
            size_t k = j + 1;
            for (; k < np && pairs[k].a == run.a && pairs[k].b == run.b; k++)
                run.count += pairs[k].count;
            if (run.count > best.count)
                best = run;
            j = k;
        }
        if (best.count < 2)
            break;
        int32_t id = vocab_merge(v, best.a, best.b);
        if (id < 0) {
            ok = false;
            break;
        }
        for (size_t c = 0; c < n; c++) {
            size_t w = 0;
            for (size_t j = 0; j < chunks[c].len; j++) {
                if (j + 1 < chunks[c].len && chunks[c].ids[j] == best.a &&
                    chunks[c].ids[j + 1] == best.b) {
                    chunks[c].ids[w++] = id;
                    j++;
                } else {
                    chunks[c].ids[w++] = chunks[c].ids[j];
                }
            }
            chunks[c].len = w;
        }
    }
    for (size_t c = 0; c < n; c++)
        free(chunks[c].ids);
    free(chunks);
    free(pairs);
    return ok;
}

/* ---- synthetic merges ---- */

/* "Ġ" (the space byte's token) followed by nothing but lowercase letters, or
 * lowercase letters alone: word-like tokens worth extending. */
static bool is_wordlike(const char *s)
{
    if (!strncmp(s, "\xc4\xa0", 2))
        s += 2;
    for (; *s; s++) {
        if (*s < 'a' || *s > 'z')
            return false;
    }
    return true;
}

/* Breadth-first: every word-like token, oldest first, grows by each letter
 * in turn; each new token is itself queued.  Tokens stay short and every
 * merge builds on tokens made by earlier merges. */
static bool fill_merges(struct vocab *v, size_t budget, const int32_t byte_id[256])
{
    int32_t *queue = malloc(budget * sizeof(*queue));
    if (!queue)
        return false;
    size_t head = 0, tail = 0;
    for (size_t id = 0; id < v->n; id++) {
        if (is_wordlike(v->str[id]))
            queue[tail++] = (int32_t)id;
    }
    bool ok = true;
    while (ok && v->n < budget && head < tail) {
        int32_t base = queue[head++];
        for (const char *c = mkmodel_letters; *c && v->n < budget; c++) {
            char buf[512];
            int32_t letter = byte_id[(unsigned char)*c];
            if ((size_t)snprintf(buf, sizeof(buf), "%s%c", v->str[base], *c) >= sizeof(buf))
                continue;
            if (vocab_find(v, buf) >= 0)
                continue;
            int32_t id = vocab_merge(v, base, letter);
            if (id < 0) {
                ok = false;
                break;
            }
            queue[tail++] = id;
        }
    }
    free(queue);
    return ok && v->n == budget;
}

/* ---- tokenizer.json / tokenizer_config.json ---- */

static const char regex_qwen[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{"
                                 "N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char regex_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char chat_template_chatml[] =
    "{%- for message in messages %}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

static cJSON *byte_level(bool add_prefix_space, bool trim_offsets, bool use_regex)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static cJSON *template_piece(const char *kind, const char *id, int type_id)
{
    cJSON *outer = cJSON_CreateObject();
    cJSON *inner = cJSON_AddObjectToObject(outer, kind);
    cJSON_AddStringToObject(inner, "id", id);
    cJSON_AddNumberToObject(inner, "type_id", type_id);
    return outer;
}

/* Llama 3's post-processor: ByteLevel, then BOS in front of each sequence. */
static cJSON *llama3_post_processor(const char *bos, int bos_id)
{
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *procs = cJSON_AddArrayToObject(seq, "processors");
    cJSON_AddItemToArray(procs, byte_level(true, false, true));
    cJSON *tp = cJSON_CreateObject();
    cJSON_AddItemToArray(procs, tp);
    cJSON_AddStringToObject(tp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(tp, "single");
    cJSON_AddItemToArray(single, template_piece("SpecialToken", bos, 0));
    cJSON_AddItemToArray(single, template_piece("Sequence", "A", 0));
    cJSON *pair = cJSON_AddArrayToObject(tp, "pair");
    cJSON_AddItemToArray(pair, template_piece("SpecialToken", bos, 0));
    cJSON_AddItemToArray(pair, template_piece("Sequence", "A", 0));
    cJSON_AddItemToArray(pair, template_piece("SpecialToken", bos, 1));
    cJSON_AddItemToArray(pair, template_piece("Sequence", "B", 1));
    cJSON *specials = cJSON_AddObjectToObject(tp, "special_tokens");
    cJSON *entry = cJSON_AddObjectToObject(specials, bos);
    cJSON_AddStringToObject(entry, "id", bos);
    cJSON *ids = cJSON_AddArrayToObject(entry, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(bos_id));
    cJSON *toks = cJSON_AddArrayToObject(entry, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(bos));
    return seq;
}

static cJSON *added_token(int id, const char *content, bool with_id)
{
    cJSON *o = cJSON_CreateObject();
    if (with_id)
        cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", false);
    cJSON_AddBoolToObject(o, "lstrip", false);
    cJSON_AddBoolToObject(o, "rstrip", false);
    cJSON_AddBoolToObject(o, "normalized", false);
    cJSON_AddBoolToObject(o, "special", true);
    return o;
}

static cJSON *tokenizer_json(const struct vocab *v, enum mkmodel_tok_style style,
                             const char *const *specials, size_t n_specials)
{
    bool llama = style == MKMODEL_TOK_LLAMA3;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (size_t i = 0; i < n_specials; i++)
        cJSON_AddItemToArray(added, added_token((int)(v->n + i), specials[i], true));
    if (llama) {
        cJSON_AddNullToObject(root, "normalizer");
    } else {
        cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
        cJSON_AddStringToObject(norm, "type", "NFC");
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *pres = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddItemToArray(pres, split);
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON *pattern = cJSON_AddObjectToObject(split, "pattern");
    cJSON_AddStringToObject(pattern, "Regex", llama ? regex_llama3 : regex_qwen);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", false);
    cJSON_AddItemToArray(pres, byte_level(false, llama, false));
    if (llama)
        cJSON_AddItemToObject(root, "post_processor",
                              llama3_post_processor(specials[0], (int)v->n));
    else
        cJSON_AddItemToObject(root, "post_processor", byte_level(false, false, false));
    cJSON_AddItemToObject(root, "decoder", byte_level(llama, llama, llama));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(model, "end_of_word_suffix", "");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", llama);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (size_t i = 0; i < v->n; i++)
        cJSON_AddItemToObject(vocab, v->str[i], cJSON_CreateNumber((double)i));
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t i = 0; i < v->n_merges; i++) {
        const char *pair[2] = {v->str[v->merges[i][0]], v->str[v->merges[i][1]]};
        cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
    }
    return root;
}

static cJSON *tokenizer_config_json(size_t first_special, enum mkmodel_tok_style style,
                                    const char *const *specials, size_t n_specials)
{
    bool llama = style == MKMODEL_TOK_LLAMA3;
    cJSON *root = cJSON_CreateObject();
    /* Llama 3 leaves BOS to the post-processor and names no add_bos_token */
    if (!llama) {
        cJSON_AddBoolToObject(root, "add_bos_token", false);
        cJSON_AddBoolToObject(root, "add_prefix_space", false);
    }
    cJSON *dec = cJSON_AddObjectToObject(root, "added_tokens_decoder");
    for (size_t i = 0; i < n_specials; i++) {
        char key[32];
        snprintf(key, sizeof(key), "%zu", first_special + i);
        cJSON_AddItemToObject(dec, key, added_token(0, specials[i], false));
    }
    cJSON *extra = cJSON_AddArrayToObject(root, "additional_special_tokens");
    cJSON_AddItemToArray(extra, cJSON_CreateString("<|im_start|>"));
    cJSON_AddItemToArray(extra, cJSON_CreateString("<|im_end|>"));
    if (llama)
        cJSON_AddStringToObject(root, "bos_token", specials[0]);
    else
        cJSON_AddNullToObject(root, "bos_token");
    if (llama) {
        char tmpl[sizeof(chat_template_chatml) + 32];
        snprintf(tmpl, sizeof(tmpl), "{{- bos_token }}\n%s", chat_template_chatml);
        cJSON_AddStringToObject(root, "chat_template", tmpl);
    } else {
        cJSON_AddStringToObject(root, "chat_template", chat_template_chatml);
    }
    cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", false);
    cJSON_AddStringToObject(root, "eos_token", "<|im_end|>");
    if (!llama)
        cJSON_AddStringToObject(root, "errors", "replace");
    cJSON_AddNumberToObject(root, "model_max_length", 131072);
    if (llama)
        cJSON_AddNullToObject(root, "pad_token");
    else
        cJSON_AddStringToObject(root, "pad_token", specials[0]);
    cJSON_AddBoolToObject(root, "split_special_tokens", false);
    cJSON_AddStringToObject(root, "tokenizer_class",
                            llama ? "PreTrainedTokenizerFast" : "Qwen2Tokenizer");
    cJSON_AddNullToObject(root, "unk_token");
    return root;
}

enum status mkmodel_tokenizer_generate(const char *dir, size_t vocab_size,
                                       enum mkmodel_tok_style style, struct mkmodel_tok_ids *ids,
                                       char *err, size_t errlen)
{
    static const char *const qwen_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    static const char *const llama_specials[] = {"<|begin_of_text|>", "<|end_of_text|>",
                                                 "<|im_start|>", "<|im_end|>"};
    bool llama = style == MKMODEL_TOK_LLAMA3;
    const char *const *specials = llama ? llama_specials : qwen_specials;
    size_t n_specials = llama ? 4 : 3;
    if (vocab_size < 256 + n_specials || vocab_size > MKMODEL_MAX_VOCAB)
        return status_fail(err, errlen, ST_ERR_RANGE,
                           "a byte-level tokenizer needs a vocab of %zu to %u ids (got %zu)",
                           256 + n_specials, MKMODEL_MAX_VOCAB, vocab_size);
    size_t budget = vocab_size - n_specials;
    struct vocab v;
    int32_t byte_id[256];
    enum status st = ST_OK;
    if (!vocab_init(&v, budget) || !add_byte_tokens(&v, byte_id) ||
        !learn_merges(&v, budget, byte_id) || !fill_merges(&v, budget, byte_id))
        st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory building the vocabulary");
    if (st == ST_OK) {
        cJSON *tok = tokenizer_json(&v, style, specials, n_specials);
        cJSON *cfg = tokenizer_config_json(v.n, style, specials, n_specials);
        if (!tok || !cfg)
            st = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        if (st == ST_OK)
            st =
                mkmodel_json_write(dir, "tokenizer.json", tok, 2, false, false, false, err, errlen);
        if (st == ST_OK)
            st = mkmodel_json_write(dir, "tokenizer_config.json", cfg, 2, true, true, false, err,
                                    errlen);
        cJSON_Delete(tok);
        cJSON_Delete(cfg);
    }
    if (st == ST_OK) {
        int first = (int)budget;
        ids->bos = first;
        ids->eos = first + (int)n_specials - 1;
        ids->eos_alt = llama ? first + 1 : first;
        ids->pad = llama ? -1 : first;
    }
    vocab_free(&v);
    return st;
}

/* ---- copying a real tokenizer ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long n = ftell(fp);
        if (n >= 0 && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
            if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = '\0';
                *len = (size_t)n;
            }
        }
    }
    fclose(fp);
    return buf;
}

static enum status copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    size_t len = 0;
    char *buf = read_file(src, &len);
    if (!buf)
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", src, strerror(errno));
    FILE *fp = fopen(dst, "wb");
    bool bad = !fp;
    if (fp) {
        bad |= fwrite(buf, 1, len, fp) != len;
        bad |= fclose(fp) != 0;
    }
    free(buf);
    if (bad)
        return status_fail(err, errlen, ST_ERR_IO, "%s: %s", dst, strerror(errno));
    return ST_OK;
}

/* The id of a special token named in tokenizer_config.json (a string or an
 * {"content": ...} object), looked up among the added tokens, then the vocab. */
static int token_id(const cJSON *tok, const cJSON *cfg, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(item))
        item = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (!cJSON_IsString(item))
        return -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
    const cJSON *a;
    cJSON_ArrayForEach(a, added)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsString(content) && cJSON_IsNumber(id) &&
            !strcmp(content->valuestring, item->valuestring))
            return id->valueint;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(model, "vocab"), item->valuestring);
    return cJSON_IsNumber(id) ? id->valueint : -1;
}

/* The largest id tokenizer.json uses, or -1 when it has none. */
static double max_token_id(const cJSON *tok)
{
    double max = -1;
    const cJSON *it;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (cJSON_IsObject(vocab)) {
        cJSON_ArrayForEach(it, vocab)
        {
            if (cJSON_IsNumber(it) && it->valuedouble > max)
                max = it->valuedouble;
        }
    } else if (cJSON_IsArray(vocab)) { /* Unigram: [piece, score] pairs */
        max = (double)cJSON_GetArraySize(vocab) - 1;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(tok, "added_tokens"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > max)
            max = id->valuedouble;
    }
    return max;
}

enum status mkmodel_tokenizer_copy(const char *src_dir, const char *dir, size_t vocab_size,
                                   struct mkmodel_tok_ids *ids, char *err, size_t errlen)
{
    static const char *const optional[] = {
        "special_tokens_map.json",
        "chat_template.jinja",
        "generation_config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
    };
    char src[4096], dst[4096];
    size_t len = 0;
    snprintf(src, sizeof(src), "%s/tokenizer.json", src_dir);
    char *text = read_file(src, &len);
    if (!text)
        return status_fail(err, errlen, ST_ERR_NOT_FOUND, "%s: %s", src, strerror(errno));
    cJSON *tok = cJSON_ParseWithLength(text, len);
    free(text);
    if (!tok)
        return status_fail(err, errlen, ST_ERR_FORMAT, "%s is not valid JSON", src);
    snprintf(src, sizeof(src), "%s/tokenizer_config.json", src_dir);
    text = read_file(src, &len);
    cJSON *cfg = text ? cJSON_ParseWithLength(text, len) : cJSON_CreateObject();
    free(text);
    enum status st = ST_OK;
    double max = max_token_id(tok);
    if (!cfg)
        st = status_fail(err, errlen, ST_ERR_FORMAT, "%s is not valid JSON", src);
    else if (max < 0)
        st = status_fail(err, errlen, ST_ERR_FORMAT, "%s/tokenizer.json has no vocab", src_dir);
    else if (max >= (double)vocab_size)
        st = status_fail(err, errlen, ST_ERR_RANGE,
                         "the tokenizer in %s uses ids up to %.0f but the model's vocab is %zu",
                         src_dir, max, vocab_size);
    if (st == ST_OK) {
        ids->bos = token_id(tok, cfg, "bos_token");
        ids->eos = token_id(tok, cfg, "eos_token");
        ids->pad = token_id(tok, cfg, "pad_token");
        ids->eos_alt = -1;
        /* Qwen names no BOS; its configs still carry <|endoftext|> as bos_token_id */
        if (ids->bos < 0)
            ids->bos = ids->pad;
    }
    cJSON_Delete(tok);
    cJSON_Delete(cfg);
    static const char *const required[] = {"tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; st == ST_OK && i < 2; i++) {
        snprintf(src, sizeof(src), "%s/%s", src_dir, required[i]);
        snprintf(dst, sizeof(dst), "%s/%s", dir, required[i]);
        FILE *probe = fopen(src, "rb");
        if (probe) {
            fclose(probe);
            st = copy_file(src, dst, err, errlen);
        }
    }
    for (size_t i = 0; st == ST_OK && i < sizeof(optional) / sizeof(optional[0]); i++) {
        snprintf(src, sizeof(src), "%s/%s", src_dir, optional[i]);
        FILE *probe = fopen(src, "rb");
        if (!probe)
            continue;
        fclose(probe);
        snprintf(dst, sizeof(dst), "%s/%s", dir, optional[i]);
        st = copy_file(src, dst, err, errlen);
    }
    return st;
}

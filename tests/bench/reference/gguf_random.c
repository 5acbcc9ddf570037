/*
 * gguf_random.c - writes a random-weight Llama model as a GGUF file, the
 * format llama.cpp loads, so that `make bench-reference` can time llama.cpp
 * on the same shapes as bench_models times MLX Manager.
 *
 * usage: gguf_random --out FILE --type q4_0|q8_0|bf16 [--hidden N]
 *                    [--layers N] [--heads N] [--kv-heads N] [--ffn N]
 *                    [--vocab N] [--tie] [--seed N]
 * (defaults: the 1B Llama shape with a 32000 vocabulary; --tie: no output
 * matrix, the embedding projects the output as in tied models)
 *
 * Every matrix, the embedding and the output projection included, is of
 * the one type asked for (what llama-quantize --pure writes): Q4_0 is 4.5
 * bits a weight like MLX 4-bit with group 64, Q8_0 is 8.5 like MLX 8-bit.
 * Quantized blocks get random codes and a small random scale; nothing is
 * quantized from floats, since only the speed of the file matters.  The
 * norms are ones.  The vocabulary is a SentencePiece-style one (unknown,
 * BOS, EOS, the 256 byte tokens, then made-up pieces) so llama.cpp's
 * tokenizer loads it.
 *
 * Format (GGUF version 3, little-endian): "GGUF", version, tensor count,
 * metadata count; the metadata as (key, type, value); each tensor's name,
 * dimensions (innermost first), type and data offset; then the data, each
 * tensor aligned to GGUF_ALIGN bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

#define GGUF_ALIGN 32

/* GGUF metadata value types */
enum { GV_UINT32 = 4, GV_INT32 = 5, GV_FLOAT32 = 6, GV_STRING = 8, GV_ARRAY = 9 };

/* ggml tensor types, and llama.cpp's file types (general.file_type) */
enum { GT_F32 = 0, GT_Q4_0 = 2, GT_Q8_0 = 8, GT_BF16 = 30 };

struct weight_type {
    const char *name;
    int ggml_type, file_type;
    size_t block, block_bytes; /* weights per block, bytes per block */
};

static const struct weight_type weight_types[] = {
    {"q4_0", GT_Q4_0, 2, 32, 18},
    {"q8_0", GT_Q8_0, 7, 32, 34},
    {"bf16", GT_BF16, 32, 1, 2},
};

struct shape {
    long hidden, layers, heads, kv_heads, ffn, vocab;
};

struct tensor_spec {
    char name[64];
    uint64_t ne0, ne1; /* ne1 == 0: a vector */
    int type;
    uint64_t offset, bytes;
};

static uint64_t rng;
static uint64_t n_metadata; /* entries the kv_* functions wrote */

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void write_or_die(FILE *f, const void *p, size_t n)
{
    if (fwrite(p, 1, n, f) != n) {
        perror("gguf_random: write");
        exit(1);
    }
}

static void put_u32(FILE *f, uint32_t v)
{
    write_or_die(f, &v, 4);
}

static void put_u64(FILE *f, uint64_t v)
{
    write_or_die(f, &v, 8);
}

static void put_str(FILE *f, const char *s)
{
    put_u64(f, strlen(s));
    write_or_die(f, s, strlen(s));
}

static void kv_u32(FILE *f, const char *key, uint32_t v)
{
    n_metadata++;
    put_str(f, key);
    put_u32(f, GV_UINT32);
    put_u32(f, v);
}

static void kv_f32(FILE *f, const char *key, float v)
{
    n_metadata++;
    put_str(f, key);
    put_u32(f, GV_FLOAT32);
    write_or_die(f, &v, 4);
}

static void kv_str(FILE *f, const char *key, const char *v)
{
    n_metadata++;
    put_str(f, key);
    put_u32(f, GV_STRING);
    put_str(f, v);
}

/* The made-up vocabulary's token i. */
static void token_text(long i, char *out, size_t outlen)
{
    if (i == 0)
        snprintf(out, outlen, "<unk>");
    else if (i == 1)
        snprintf(out, outlen, "<s>");
    else if (i == 2)
        snprintf(out, outlen, "</s>");
    else if (i < 3 + 256)
        snprintf(out, outlen, "<0x%02lX>", i - 3);
    else
        snprintf(out, outlen, "\xe2\x96\x81t%ld", i); /* U+2581, SentencePiece's space */
}

/* SentencePiece token types: 1 normal, 2 unknown, 3 control, 6 byte */
static int32_t token_type(long i)
{
    return i == 0 ? 2 : i < 3 ? 3 : i < 3 + 256 ? 6 : 1;
}

static void write_vocab(FILE *f, long vocab)
{
    char text[32];
    n_metadata += 3;
    put_str(f, "tokenizer.ggml.tokens");
    put_u32(f, GV_ARRAY);
    put_u32(f, GV_STRING);
    put_u64(f, (uint64_t)vocab);
    for (long i = 0; i < vocab; i++) {
        token_text(i, text, sizeof(text));
        put_str(f, text);
    }
    put_str(f, "tokenizer.ggml.scores");
    put_u32(f, GV_ARRAY);
    put_u32(f, GV_FLOAT32);
    put_u64(f, (uint64_t)vocab);
    for (long i = 0; i < vocab; i++) {
        float score = i < 3 + 256 ? 0.0f : -(float)i;
        write_or_die(f, &score, 4);
    }
    put_str(f, "tokenizer.ggml.token_type");
    put_u32(f, GV_ARRAY);
    put_u32(f, GV_INT32);
    put_u64(f, (uint64_t)vocab);
    for (long i = 0; i < vocab; i++) {
        int32_t t = token_type(i);
        write_or_die(f, &t, 4);
    }
}

static size_t add_tensor(struct tensor_spec *t, size_t n, const char *name, uint64_t ne0,
                         uint64_t ne1, const struct weight_type *wt, uint64_t *offset)
{
    struct tensor_spec *s = &t[n];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->ne0 = ne0;
    s->ne1 = ne1;
    if (ne1 == 0) {
        s->type = GT_F32;
        s->bytes = ne0 * 4;
    } else {
        s->type = wt->ggml_type;
        s->bytes = ne0 * ne1 / wt->block * wt->block_bytes;
    }
    s->offset = *offset;
    *offset += (s->bytes + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
    return n + 1;
}

/* Random contents for one block of a quantized or bf16 matrix. */
static void fill_block(const struct weight_type *wt, uint8_t *b)
{
    if (wt->ggml_type == GT_BF16) {
        /* roughly uniform in [-0.05, 0.05] */
        float v = ((float)(next_random() % 20001) - 10000.0f) * 5e-6f;
        uint16_t h = f32_to_bf16(v);
        memcpy(b, &h, 2);
        return;
    }
    uint16_t d = f32_to_f16(0.002f + (float)(next_random() % 1000) * 1e-5f);
    memcpy(b, &d, 2);
    for (size_t i = 2; i < wt->block_bytes; i += 8) {
        uint64_t r = next_random();
        size_t n = wt->block_bytes - i < 8 ? wt->block_bytes - i : 8;
        memcpy(b + i, &r, n);
    }
}

static void write_tensor_data(FILE *f, const struct tensor_spec *s, const struct weight_type *wt)
{
    static uint8_t buf[1 << 16];
    size_t used = 0;
    if (s->type == GT_F32) {
        float one = 1.0f;
        for (uint64_t i = 0; i < s->ne0; i++)
            write_or_die(f, &one, 4);
    } else {
        for (uint64_t done = 0; done < s->bytes; done += wt->block_bytes) {
            if (used + wt->block_bytes > sizeof(buf)) {
                write_or_die(f, buf, used);
                used = 0;
            }
            fill_block(wt, buf + used);
            used += wt->block_bytes;
        }
        write_or_die(f, buf, used);
    }
    static const uint8_t zeros[GGUF_ALIGN];
    size_t pad = (size_t)((GGUF_ALIGN - s->bytes % GGUF_ALIGN) % GGUF_ALIGN);
    write_or_die(f, zeros, pad);
}

static int usage(void)
{
    fprintf(stderr, "usage: gguf_random --out FILE --type q4_0|q8_0|bf16 [--hidden N] "
                    "[--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N] [--tie] "
                    "[--seed N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct shape sh = {2048, 16, 32, 8, 8192, 32000};
    const char *out = NULL, *type = NULL;
    rng = 0x9e3779b97f4a7c15ull;
    bool tie = false;
    long seed = 0;
    const struct {
        const char *name;
        long *value;
    } numbers[] = {{"--hidden", &sh.hidden}, {"--layers", &sh.layers},
                   {"--heads", &sh.heads},   {"--kv-heads", &sh.kv_heads},
                   {"--ffn", &sh.ffn},       {"--vocab", &sh.vocab},
                   {"--seed", &seed}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tie")) {
            tie = true;
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        const char *opt = argv[i], *val = argv[++i];
        if (!strcmp(opt, "--out")) {
            out = val;
            continue;
        }
        if (!strcmp(opt, "--type")) {
            type = val;
            continue;
        }
        size_t k = 0, n_numbers = sizeof(numbers) / sizeof(numbers[0]);
        while (k < n_numbers && strcmp(opt, numbers[k].name) != 0)
            k++;
        if (k == n_numbers)
            return usage();
        *numbers[k].value = strtol(val, NULL, 10);
    }
    rng ^= (uint64_t)seed * 0x2545f4914f6cdd1dull;
    const struct weight_type *wt = NULL;
    for (size_t i = 0; type && i < sizeof(weight_types) / sizeof(weight_types[0]); i++)
        if (!strcmp(type, weight_types[i].name))
            wt = &weight_types[i];
    if (!out || !wt)
        return usage();
    if (sh.hidden <= 0 || sh.layers <= 0 || sh.heads <= 0 || sh.kv_heads <= 0 || sh.ffn <= 0 ||
        sh.vocab < 3 + 256 || sh.hidden % sh.heads || sh.heads % sh.kv_heads || sh.hidden % 32 ||
        sh.ffn % 32) {
        fprintf(stderr, "gguf_random: the shape does not make a Llama model (hidden and ffn "
                        "multiples of 32, heads dividing hidden, kv-heads dividing heads, "
                        "vocab at least 259)\n");
        return 2;
    }
    uint64_t hd = (uint64_t)(sh.hidden / sh.heads), kv_dim = hd * (uint64_t)sh.kv_heads;
    uint64_t h = (uint64_t)sh.hidden, ffn = (uint64_t)sh.ffn, vocab = (uint64_t)sh.vocab;

    size_t max_tensors = 3 + 9 * (size_t)sh.layers, n = 0;
    struct tensor_spec *t = calloc(max_tensors, sizeof(*t));
    if (!t) {
        fprintf(stderr, "gguf_random: out of memory for %zu tensors\n", max_tensors);
        return 1;
    }
    uint64_t offset = 0;
    char name[64];
    n = add_tensor(t, n, "token_embd.weight", h, vocab, wt, &offset);
    for (long l = 0; l < sh.layers; l++) {
        static const struct {
            const char *suffix;
            int in, out; /* 0 hidden, 1 kv_dim, 2 ffn, -1 a vector */
        } mats[] = {{"attn_norm", 0, -1}, {"attn_q", 0, 0},      {"attn_k", 0, 1},
                    {"attn_v", 0, 1},     {"attn_output", 0, 0}, {"ffn_norm", 0, -1},
                    {"ffn_gate", 0, 2},   {"ffn_up", 0, 2},      {"ffn_down", 2, 0}};
        uint64_t dims[3] = {h, kv_dim, ffn};
        for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++) {
            snprintf(name, sizeof(name), "blk.%ld.%s.weight", l, mats[i].suffix);
            n = add_tensor(t, n, name, dims[mats[i].in], mats[i].out < 0 ? 0 : dims[mats[i].out],
                           wt, &offset);
        }
    }
    n = add_tensor(t, n, "output_norm.weight", h, 0, wt, &offset);
    if (!tie)
        n = add_tensor(t, n, "output.weight", h, vocab, wt, &offset);

    /* the metadata first into memory: the header before it counts its entries */
    char *meta = NULL;
    size_t meta_len = 0;
    FILE *m = open_memstream(&meta, &meta_len);
    if (!m)
        return 1;
    kv_str(m, "general.architecture", "llama");
    kv_str(m, "general.name", "random-weight benchmark model");
    kv_u32(m, "general.file_type", (uint32_t)wt->file_type);
    kv_u32(m, "general.alignment", GGUF_ALIGN);
    kv_u32(m, "llama.context_length", 32768); /* room for any slot size */
    kv_u32(m, "llama.embedding_length", (uint32_t)h);
    kv_u32(m, "llama.block_count", (uint32_t)sh.layers);
    kv_u32(m, "llama.feed_forward_length", (uint32_t)ffn);
    kv_u32(m, "llama.attention.head_count", (uint32_t)sh.heads);
    kv_u32(m, "llama.attention.head_count_kv", (uint32_t)sh.kv_heads);
    kv_f32(m, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_f32(m, "llama.rope.freq_base", 10000.0f);
    kv_u32(m, "llama.rope.dimension_count", (uint32_t)hd);
    kv_u32(m, "llama.vocab_size", (uint32_t)vocab);
    kv_str(m, "tokenizer.ggml.model", "llama");
    write_vocab(m, sh.vocab);
    kv_u32(m, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(m, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(m, "tokenizer.ggml.unknown_token_id", 0);
    if (fclose(m) != 0)
        return 1;

    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    write_or_die(f, "GGUF", 4);
    put_u32(f, 3);
    put_u64(f, n);
    put_u64(f, n_metadata);
    write_or_die(f, meta, meta_len);
    free(meta);
    for (size_t i = 0; i < n; i++) {
        put_str(f, t[i].name);
        put_u32(f, t[i].ne1 ? 2 : 1);
        put_u64(f, t[i].ne0);
        if (t[i].ne1)
            put_u64(f, t[i].ne1);
        put_u32(f, (uint32_t)t[i].type);
        put_u64(f, t[i].offset);
    }
    static const uint8_t zeros[GGUF_ALIGN];
    long pos = ftell(f);
    write_or_die(f, zeros, (size_t)((GGUF_ALIGN - pos % GGUF_ALIGN) % GGUF_ALIGN));
    for (size_t i = 0; i < n; i++)
        write_tensor_data(f, &t[i], wt);
    free(t);
    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }
    printf("gguf_random: wrote %s (%s, %zu tensors, %.1f MB of weights)\n", out, wt->name, n,
           (double)offset / 1e6);
    return 0;
}

/*
 * model_load.c - config + safetensors -> struct model, and its scratch.
 *
 * Every tensor the architecture needs is looked up by its HF name and
 * checked against the config (dtype and shape) before its bytes are used.
 * Weights are copied into anonymous memory by default: on hosts with
 * proactive reclaim, idle file-backed pages of a mapping get evicted and
 * decode slows down.  With use_mmap they point into the mapping instead
 * (when suitably aligned).  Norm vectors and biases are always upcast to
 * fp32 copies; matrices stay in their stored dtype.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model_internal.h"
#include "quant_packed.h"
#include "safetensors.h"

struct loader {
    struct model *m;
    struct safetensors_set *set;
    const cJSON *quant; /* config.json quantization object, or NULL */
    bool mmap;
    bool widen; /* 2/3/5/6-bit codes to quant_kernel_bits as they are read
                   (never for mapped files) */
    char *err;
    size_t errlen;
};

static void weight_buf_free(struct weight_buf b)
{
    if (b.mapped_len)
        munmap(b.p, b.mapped_len);
    else
        free(b.p);
}

/* Hands b to the model (freed with it); on failure frees b. */
static enum status track(struct model *m, struct weight_buf b, char *err, size_t errlen)
{
    if (m->n_allocs == m->cap_allocs) {
        size_t cap = m->cap_allocs ? 2 * m->cap_allocs : 64;
        struct weight_buf *na = realloc(m->allocs, cap * sizeof(*na));
        if (!na) {
            weight_buf_free(b);
            return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        }
        m->allocs = na;
        m->cap_allocs = cap;
    }
    m->allocs[m->n_allocs++] = b;
    return ST_OK;
}

#define HUGE_PAGE ((size_t)2 << 20)

/*
 * Memory for one tensor, 64-byte aligned with 64 bytes of slack for vector
 * over-reads.  Large tensors get their own 2 MiB-aligned anonymous mapping,
 * whose whole huge pages are advised into transparent huge pages: fewer TLB
 * misses when decode streams every weight each step.  Two things keep the
 * advice to the tensor's own bytes, so the resident set stays the weights:
 * - the partial page at the end (the slack, or the tensor's last bytes) is
 *   not advised: the kernel would back it with a whole huge page on the
 *   first touch or when khugepaged collapses it;
 * - the mapping is unmapped when the model is freed.  Advice given to
 *   malloc'd memory outlived it: the heap kept the flag, and the next
 *   model's small buffers landing there were backed by huge pages they
 *   mostly did not use (a 1B model in 8 bits, loaded after another model
 *   was freed, read 50-66 MB over its weights + KV + scratch).
 */
static struct weight_buf weight_alloc(size_t len)
{
    if (len < 2 * HUGE_PAGE)
        return (struct weight_buf){aligned_alloc(64, (len + 63) / 64 * 64 + 64), 0};
    size_t size = (len + 64 + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE, span = size + HUGE_PAGE;
    char *map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return (struct weight_buf){NULL, 0};
    /* keep the aligned size bytes, give back the rest of the span */
    char *p = map + (HUGE_PAGE - (uintptr_t)map % HUGE_PAGE) % HUGE_PAGE;
    if (p > map)
        munmap(map, (size_t)(p - map));
    if (p + size < map + span)
        munmap(p + size, (size_t)(map + span - (p + size)));
    madvise(p, len / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE); /* advisory: failure costs speed */
    return (struct weight_buf){p, size};
}

/*
 * Returns the tensor's bytes: inside the mapping, or a fresh aligned copy in
 * a buffer of at least `room` bytes (the tensor's own size when smaller),
 * which the model's weight bytes count.
 */
static enum status tensor_bytes_room(struct loader *ld, struct safetensors *f,
                                     const struct safetensors_tensor *t, size_t room,
                                     const void **out)
{
    size_t len = (size_t)(t->end - t->begin);
    if (ld->mmap) {
        const void *p = safetensors_data(f, t);
        if (p && (uintptr_t)p % dtype_size(t->dtype) == 0) {
            *out = p;
            ld->m->weight_bytes += len;
            return ST_OK;
        }
    }
    size_t size = room > len ? room : len;
    struct weight_buf buf = weight_alloc(size);
    if (!buf.p)
        return status_fail(ld->err, ld->errlen, ST_ERR_NOMEM,
                           "%s: tensor '%s': cannot allocate %zu bytes", safetensors_path(f),
                           t->name, size);
    enum status rc = track(ld->m, buf, ld->err, ld->errlen);
    if (rc == ST_OK)
        rc = safetensors_read(f, t, buf.p, ld->err, ld->errlen);
    if (rc != ST_OK)
        return rc;
    ld->m->weight_bytes += size;
    *out = buf.p;
    return ST_OK;
}

static enum status tensor_bytes(struct loader *ld, struct safetensors *f,
                                const struct safetensors_tensor *t, const void **out)
{
    return tensor_bytes_room(ld, f, t, 0, out);
}

static const struct safetensors_tensor *find(struct loader *ld, const char *name,
                                             struct safetensors **f)
{
    return safetensors_set_find(ld->set, name, f);
}

static void fmt_shape(const struct safetensors_tensor *t, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

static bool shape_is(const struct safetensors_tensor *t, int64_t a, int64_t b)
{
    return t->ndim == 2 && t->shape[0] == a && t->shape[1] == b;
}

static enum status wrong_shape(struct loader *ld, struct safetensors *f,
                               const struct safetensors_tensor *t, const char *what, long long a,
                               long long b)
{
    char got[128];
    fmt_shape(t, got, sizeof(got));
    if (b < 0)
        return status_fail(ld->err, ld->errlen, ST_ERR_INVALID,
                           "%s: tensor '%s': shape %s %s, expected [%lld] from config.json",
                           safetensors_path(f), t->name, got, dtype_name(t->dtype), a);
    return status_fail(ld->err, ld->errlen, ST_ERR_INVALID,
                       "%s: tensor '%s': %s shape %s %s, expected [%lld, %lld] from config.json",
                       safetensors_path(f), t->name, what, got, dtype_name(t->dtype), a, b);
}

/* A vector of n floats (norm weight or bias), upcast into an fp32 copy. */
static enum status load_vec(struct loader *ld, const char *name, int n, bool required,
                            const float **out)
{
    struct safetensors *f = NULL;
    const struct safetensors_tensor *t = find(ld, name, &f);
    *out = NULL;
    if (!t) {
        if (!required)
            return ST_OK;
        return status_fail(ld->err, ld->errlen, ST_ERR_NOT_FOUND,
                           "model weights: tensor '%s' is missing", name);
    }
    if (t->ndim != 1 || t->shape[0] != n ||
        (t->dtype != DTYPE_F32 && t->dtype != DTYPE_F16 && t->dtype != DTYPE_BF16))
        return wrong_shape(ld, f, t, "", n, -1);
    /* only the fp32 copy is kept: the stored bytes go through a temporary */
    size_t len = (size_t)(t->end - t->begin);
    float *v = malloc((size_t)n * sizeof(float));
    void *raw = malloc(len ? len : 1);
    enum status rc = ST_OK;
    if (!v || !raw) {
        free(v);
        rc = status_fail(ld->err, ld->errlen, ST_ERR_NOMEM, "out of memory");
    } else if ((rc = track(ld->m, (struct weight_buf){v, 0}, ld->err, ld->errlen)) == ST_OK &&
               (rc = safetensors_read(f, t, raw, ld->err, ld->errlen)) == ST_OK) {
        for (int i = 0; i < n; i++)
            v[i] = dtype_load_f32(raw, t->dtype, (size_t)i);
        ld->m->weight_bytes += (size_t)n * sizeof(float);
        *out = v;
    }
    free(raw);
    return rc;
}

/*
 * The quantization parameters config.json's quantization object `quant`
 * gives for module `prefix`: a per-module override object, `false` (not
 * quantized), or the global values of cfg.  Returns false when there is no
 * quantization object.
 */
static bool config_quant(const cJSON *quant, const struct model_config *cfg, const char *prefix,
                         bool *enabled, int *bits, int *group)
{
    if (!quant)
        return false;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(quant, prefix);
    *enabled = true;
    *bits = cfg->quant_bits;
    *group = cfg->quant_group_size;
    if (cJSON_IsFalse(o)) {
        *enabled = false;
    } else if (cJSON_IsObject(o)) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bits");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "group_size");
        if (cJSON_IsNumber(b))
            *bits = b->valueint;
        if (cJSON_IsNumber(g))
            *group = g->valueint;
    }
    return true;
}

static enum status load_quant(struct loader *ld, const char *prefix, size_t rows, size_t cols,
                              struct safetensors *f, const struct safetensors_tensor *tw,
                              struct kernel_mat *out)
{
    char name[256];
    struct safetensors *fs = NULL, *fb = NULL;
    snprintf(name, sizeof(name), "%s.scales", prefix);
    const struct safetensors_tensor *ts = find(ld, name, &fs);
    snprintf(name, sizeof(name), "%s.biases", prefix);
    const struct safetensors_tensor *tb = find(ld, name, &fb);
    if (!tb)
        return status_fail(ld->err, ld->errlen, ST_ERR_NOT_FOUND,
                           "model weights: '%s.scales' exists but '%s' is missing", prefix, name);
    /* bits and group size follow from the shapes; the config must agree */
    if (tw->dtype != DTYPE_U32 || tw->ndim != 2 || tw->shape[0] != (int64_t)rows ||
        tw->shape[1] <= 0 || ((uint64_t)tw->shape[1] * 32) % cols != 0)
        return wrong_shape(ld, f, tw, "quantized (U32)", (long long)rows,
                           (long long)(cols * (size_t)ld->m->cfg.quant_bits / 32));
    int bits = (int)((uint64_t)tw->shape[1] * 32 / cols);
    if (ts->ndim != 2 || ts->shape[0] != (int64_t)rows || ts->shape[1] <= 0 ||
        cols % (uint64_t)ts->shape[1] != 0)
        return wrong_shape(
            ld, fs, ts, "scales", (long long)rows,
            (long long)(cols /
                        (size_t)(ld->m->cfg.quant_group_size ? ld->m->cfg.quant_group_size : 64)));
    int group = (int)(cols / (uint64_t)ts->shape[1]);
    if (!shape_is(tb, ts->shape[0], ts->shape[1]) || tb->dtype != ts->dtype)
        return wrong_shape(ld, fb, tb, "biases (same as scales)", (long long)ts->shape[0],
                           (long long)ts->shape[1]);
    bool enabled;
    int cbits, cgroup;
    if (config_quant(ld->quant, &ld->m->cfg, prefix, &enabled, &cbits, &cgroup) &&
        (!enabled || cbits != bits || cgroup != group))
        return status_fail(ld->err, ld->errlen, ST_ERR_INVALID,
                           "%s: '%s' is quantized with %d bits, group %d, but config.json says "
                           "%s",
                           safetensors_path(f), prefix, bits, group,
                           enabled ? "otherwise" : "it is not quantized");
    struct quant_matrix q = {
        .rows = rows, .cols = cols, .bits = bits, .group_size = group, .param_dtype = ts->dtype};
    enum status rc = quant_matrix_check(&q, ld->err, ld->errlen);
    if (rc != ST_OK)
        return status_fail(ld->err, ld->errlen, rc,
                           "%s: '%s': unsupported quantization: %d "
                           "bits, group %d, %s scales",
                           safetensors_path(f), prefix, bits, group, dtype_name(ts->dtype));
    /* Widened, 2/3/5/6-bit codes run on the integer-dot kernels as fast as
     * 4/8-bit ones, for 8/6 (6-bit) up to 2x (2-bit) their memory; the
     * float reference would compute them 20-70x slower.  In place, in the
     * buffer they are read into: no second copy, no second set of page
     * faults. */
    int kbits = ld->widen ? quant_kernel_bits(bits) : bits;
    const void *pq, *ps, *pb;
    if ((rc = tensor_bytes_room(ld, f, tw, rows * quant_row_words(cols, kbits) * 4, &pq)) ||
        (rc = tensor_bytes(ld, fs, ts, &ps)) || (rc = tensor_bytes(ld, fb, tb, &pb)))
        return rc;
    q.q = pq;
    q.scales = ps;
    q.biases = pb;
    if (kbits != bits) {
        /* the buffer is the model's own (not mapped: kbits == bits there) */
        quant_widen(&q, kbits, (uint32_t *)(uintptr_t)pq);
        q.bits = kbits;
    }
    *out = (struct kernel_mat){.rows = rows, .cols = cols, .quantized = true, .q = q};
    return ST_OK;
}

/* A [rows, cols] Linear weight `prefix`.weight: F32/F16/BF16, or MLX-quantized. */
static enum status load_mat(struct loader *ld, const char *prefix, int rows_i, int cols_i,
                            struct kernel_mat *out)
{
    size_t rows = (size_t)rows_i, cols = (size_t)cols_i;
    char name[256];
    snprintf(name, sizeof(name), "%s.weight", prefix);
    struct safetensors *f = NULL;
    const struct safetensors_tensor *tw = find(ld, name, &f);
    if (!tw)
        return status_fail(ld->err, ld->errlen, ST_ERR_NOT_FOUND,
                           "model weights: tensor '%s' is missing", name);
    snprintf(name, sizeof(name), "%s.scales", prefix);
    if (find(ld, name, NULL))
        return load_quant(ld, prefix, rows, cols, f, tw, out);
    if (!shape_is(tw, (int64_t)rows, (int64_t)cols) ||
        (tw->dtype != DTYPE_F32 && tw->dtype != DTYPE_F16 && tw->dtype != DTYPE_BF16))
        return wrong_shape(ld, f, tw, "F32/F16/BF16", (long long)rows, (long long)cols);
    const void *p;
    enum status rc = tensor_bytes(ld, f, tw, &p);
    if (rc != ST_OK)
        return rc;
    *out = (struct kernel_mat){.rows = rows, .cols = cols, .dtype = tw->dtype, .data = p};
    return ST_OK;
}

static enum status load_layer(struct loader *ld, int l, struct layer_weights *lw)
{
    const struct model_config *c = &ld->m->cfg;
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    char p[160], n[200];
    enum status rc;
#define NAME(fmt) (snprintf(p, sizeof(p), "model.layers.%d." fmt, l), p)
#define VNAME(fmt) (snprintf(n, sizeof(n), "model.layers.%d." fmt, l), n)
    if ((rc = load_vec(ld, VNAME("input_layernorm.weight"), c->hidden, true, &lw->attn_norm)) ||
        (rc = load_vec(ld, VNAME("post_attention_layernorm.weight"), c->hidden, true,
                       &lw->ffn_norm)) ||
        (rc = load_mat(ld, NAME("self_attn.q_proj"), qd, c->hidden, &lw->wq)) ||
        (rc = load_mat(ld, NAME("self_attn.k_proj"), kd, c->hidden, &lw->wk)) ||
        (rc = load_mat(ld, NAME("self_attn.v_proj"), kd, c->hidden, &lw->wv)) ||
        (rc = load_mat(ld, NAME("self_attn.o_proj"), c->hidden, qd, &lw->wo)) ||
        (rc = load_mat(ld, NAME("mlp.gate_proj"), c->ffn, c->hidden, &lw->w_gate)) ||
        (rc = load_mat(ld, NAME("mlp.up_proj"), c->ffn, c->hidden, &lw->w_up)) ||
        (rc = load_mat(ld, NAME("mlp.down_proj"), c->hidden, c->ffn, &lw->w_down)))
        return rc;
    if (c->attention_bias &&
        ((rc = load_vec(ld, VNAME("self_attn.q_proj.bias"), qd, true, &lw->bq)) ||
         (rc = load_vec(ld, VNAME("self_attn.k_proj.bias"), kd, true, &lw->bk)) ||
         (rc = load_vec(ld, VNAME("self_attn.v_proj.bias"), kd, true, &lw->bv))))
        return rc;
    if (c->qk_norm &&
        ((rc = load_vec(ld, VNAME("self_attn.q_norm.weight"), c->head_dim, true, &lw->q_norm)) ||
         (rc = load_vec(ld, VNAME("self_attn.k_norm.weight"), c->head_dim, true, &lw->k_norm))))
        return rc;
#undef NAME
#undef VNAME
    return ST_OK;
}

/* RoPE inverse frequencies with the config's scaling (HF semantics). */
static void compute_inv_freq(const struct model_config *c, float *inv_freq)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        if (c->rope_scaling == MODEL_ROPE_SCALING_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == MODEL_ROPE_SCALING_LLAMA3) {
            double old = (double)c->rope_original_max_pos;
            double low_wl = old / c->rope_low_freq_factor;
            double high_wl = old / c->rope_high_freq_factor;
            double wl = 2.0 * M_PI / f;
            if (wl > low_wl) {
                f /= c->rope_factor;
            } else if (wl >= high_wl) {
                double smooth = (old / wl - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = (float)f;
    }
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

enum { N_SCRATCH = 12 };

/* Floats of each scratch buffer, in struct model_scratch order; mm = matmul scratch floats. */
static void scratch_sizes(const struct model_config *c, size_t T, size_t mm, size_t n[N_SCRATCH])
{
    size_t h = (size_t)c->hidden, qd = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kd = (size_t)c->n_kv_heads * (size_t)c->head_dim, f = (size_t)c->ffn;
    size_t sizes[N_SCRATCH] = {
        T * h,                              /* x */
        T * max_sz(h, qd),                  /* xb */
        T * qd,                             /* q */
        T * kd,                             /* k */
        T * kd,                             /* v */
        T * qd,                             /* att_out */
        T * h,                              /* proj */
        T * f,                              /* hb */
        T * f,                              /* hb2 */
        (size_t)c->max_position_embeddings, /* att */
        T * (size_t)c->head_dim,            /* rope */
        mm + 1,                             /* mm */
    };
    memcpy(n, sizes, sizeof(sizes));
}

static size_t scratch_total(const struct model_config *c, size_t T, size_t mm)
{
    size_t n[N_SCRATCH], total = 2 * T * sizeof(int); /* tok_seq, tok_pos */
    scratch_sizes(c, T, mm, n);
    for (int i = 0; i < N_SCRATCH; i++)
        total += n[i] * sizeof(float);
    return total;
}

static enum status alloc_scratch(struct model *m, char *err, size_t errlen)
{
    const struct model_config *c = &m->cfg;
    size_t T = (size_t)m->max_tokens;
    size_t mm = kernel_matmul_scratch(&m->w.lm_head, T);
    mm = max_sz(mm, kernel_matmul_scratch(&m->w.embed, T));
    for (int l = 0; l < c->n_layers; l++) {
        const struct layer_weights *lw = &m->w.layers[l];
        const struct kernel_mat *ms[] = {&lw->wq,     &lw->wk,   &lw->wv,    &lw->wo,
                                         &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
            mm = max_sz(mm, kernel_matmul_scratch(ms[i], T));
    }
    float **bufs[N_SCRATCH] = {&m->s.x,   &m->s.xb,      &m->s.q,    &m->s.k,
                               &m->s.v,   &m->s.att_out, &m->s.proj, &m->s.hb,
                               &m->s.hb2, &m->s.att,     &m->s.rope, &m->s.mm};
    size_t n[N_SCRATCH];
    scratch_sizes(c, T, mm, n);
    for (int i = 0; i < N_SCRATCH; i++) {
        *bufs[i] = malloc(n[i] * sizeof(float));
        if (!*bufs[i])
            return status_fail(err, errlen, ST_ERR_NOMEM,
                               "cannot allocate forward scratch for %d tokens", m->max_tokens);
    }
    m->s.tok_seq = malloc(T * sizeof(int));
    m->s.tok_pos = malloc(T * sizeof(int));
    if (!m->s.tok_seq || !m->s.tok_pos)
        return status_fail(err, errlen, ST_ERR_NOMEM, "cannot allocate forward scratch");
    m->scratch_bytes = scratch_total(c, T, mm);
    return ST_OK;
}

static char *read_file_text(const char *path, size_t max, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long n = ftell(fp);
        if (n >= 0 && (size_t)n <= max && fseek(fp, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)n + 1)) != NULL) {
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

/* Parses dir/config.json into *cfg; *root (optional) gets the JSON, owned by the caller. */
static enum status read_config(const char *dir, struct model_config *cfg, cJSON **root, char *err,
                               size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    size_t len = 0;
    char *text = read_file_text(path, 16u << 20, &len);
    if (!text)
        return status_fail(err, errlen, ST_ERR_IO, "%s: cannot read", path);
    enum status rc = model_config_parse(text, len, cfg, err, errlen);
    if (rc == ST_OK && root) {
        *root = cJSON_ParseWithLength(text, len);
        if (!*root)
            rc = status_fail(err, errlen, ST_ERR_NOMEM, "%s: out of memory", path);
    }
    free(text);
    return rc;
}

/* Picks the int8-activation path (integer dots, packed codes) for every
 * quantized matrix, or not. */
static void set_x8(struct model *m, bool x8)
{
    m->w.embed.x8 = m->w.lm_head.x8 = x8;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        struct layer_weights *lw = &m->w.layers[l];
        struct kernel_mat *ms[] = {&lw->wq,     &lw->wk,   &lw->wv,    &lw->wo,
                                   &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
            ms[i]->x8 = x8;
    }
}

/*
 * Rewrites every 4- and 8-bit matrix (widened ones included) into the
 * 16-row bundles of quant_packed.h, in place: the integer-dot kernel's
 * layout.  Only for weights the model read into its own memory (not mapped
 * files) and not under quant_exact.  A tied lm_head shares the embedding's
 * memory and is packed with it.
 */
static enum status pack_mat(struct kernel_mat *w, char *err, size_t errlen)
{
    if (!w->quantized || !w->x8 || !quant_packable(&w->q))
        return ST_OK;
    return quant_pack(&w->q, err, errlen);
}

static enum status pack_weights(struct model *m, char *err, size_t errlen)
{
    enum status rc = pack_mat(&m->w.embed, err, errlen);
    if (rc == ST_OK && m->cfg.tie_word_embeddings)
        m->w.lm_head.q = m->w.embed.q;
    else if (rc == ST_OK)
        rc = pack_mat(&m->w.lm_head, err, errlen);
    for (int l = 0; l < m->cfg.n_layers && rc == ST_OK; l++) {
        struct layer_weights *lw = &m->w.layers[l];
        struct kernel_mat *ms[] = {&lw->wq,     &lw->wk,   &lw->wv,    &lw->wo,
                                   &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]) && rc == ST_OK; i++)
            rc = pack_mat(ms[i], err, errlen);
    }
    return rc;
}

/* Whether a load with opts widens 2/3/5/6-bit codes (load_quant): not when
 * it maps the files or keeps the reference path. */
static bool load_widens(const struct model_load_opts *opts)
{
    return !(opts && (opts->use_mmap || opts->quant_exact));
}

static int opts_max_tokens(const struct model_load_opts *opts)
{
    return opts && opts->max_batch_tokens > 0 ? opts->max_batch_tokens : 512;
}

static enum status load_all(struct model *m, const char *dir, const struct model_load_opts *opts,
                            char *err, size_t errlen)
{
    cJSON *root = NULL;
    enum status rc = read_config(dir, &m->cfg, &root, err, errlen);
    if (rc != ST_OK)
        return rc;
    m->family = model_family_find(m->cfg.architecture, m->cfg.model_type);

    struct loader ld = {.m = m,
                        .mmap = opts && opts->use_mmap,
                        .widen = load_widens(opts),
                        .quant = model_config_quant_item(root),
                        .err = err,
                        .errlen = errlen};
    rc = safetensors_set_open(dir, &m->files, err, errlen);
    if (rc != ST_OK)
        goto out;
    ld.set = m->files;
    for (size_t i = 0; ld.mmap && i < safetensors_set_n_files(m->files); i++)
        if ((rc = safetensors_map(safetensors_set_file(m->files, i), err, errlen)) != ST_OK)
            goto out;

    const struct model_config *c = &m->cfg;
    m->w.layers = calloc((size_t)c->n_layers, sizeof(*m->w.layers));
    m->inv_freq = malloc((size_t)c->head_dim / 2 * sizeof(float));
    if (!m->w.layers || !m->inv_freq) {
        rc = status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
        goto out;
    }
    compute_inv_freq(c, m->inv_freq);
    if ((rc = load_mat(&ld, "model.embed_tokens", c->vocab, c->hidden, &m->w.embed)) ||
        (rc = load_vec(&ld, "model.norm.weight", c->hidden, true, &m->w.norm)))
        goto out;
    for (int l = 0; l < c->n_layers; l++)
        if ((rc = load_layer(&ld, l, &m->w.layers[l])) != ST_OK)
            goto out;
    if (c->tie_word_embeddings)
        m->w.lm_head = m->w.embed;
    else if ((rc = load_mat(&ld, "lm_head", c->vocab, c->hidden, &m->w.lm_head)) != ST_OK)
        goto out;
    m->max_tokens = opts_max_tokens(opts);
    if (m->max_tokens > MODEL_MAX_BATCH_TOKENS) {
        rc = status_fail(err, errlen, ST_ERR_RANGE, "max_batch_tokens %d is too large",
                         m->max_tokens);
        goto out;
    }
    rc = alloc_scratch(m, err, errlen);
    if (rc == ST_OK)
        set_x8(m, !(opts && opts->quant_exact));
    if (rc == ST_OK && !ld.mmap)
        rc = pack_weights(m, err, errlen);
    if (rc == ST_OK)
        rc = threadpool_create(opts ? opts->n_threads : 0, &m->pool, err, errlen);
out:
    cJSON_Delete(root);
    if (rc == ST_OK && !ld.mmap) {
        /* everything was copied: the files are no longer needed */
        safetensors_set_close(m->files);
        m->files = NULL;
    }
    return rc;
}

enum status model_load(const char *dir, const struct model_load_opts *opts, struct model **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    enum status rc = load_all(m, dir, opts, err, errlen);
    if (rc != ST_OK) {
        model_free(m);
        return rc;
    }
    *out = m;
    return ST_OK;
}

/*
 * The bytes tensor t (of module prefix + suffix) takes once loaded:
 * vectors (norms, biases) as fp32 copies; a quantized matrix's codes
 * widened as load_quant widens them unless the load keeps the files' layout
 * (use_mmap or quant_exact), its bits read from config.json as the loader
 * checks them (a quantized model without a quantization object there,
 * which mlx-lm always writes, counts as stored); everything else as
 * stored.
 */
static size_t loaded_tensor_bytes(const struct safetensors_tensor *t, const cJSON *quant,
                                  const struct model_config *c, bool widen)
{
    size_t len = (size_t)(t->end - t->begin);
    if (t->ndim == 1)
        return (size_t)t->nelem * sizeof(float);
    const char *suffix = ".weight";
    size_t n = strlen(t->name), ns = strlen(suffix);
    bool enabled;
    int bits, group;
    char prefix[256];
    if (!widen || t->dtype != DTYPE_U32 || n <= ns || n - ns >= sizeof(prefix) ||
        strcmp(t->name + n - ns, suffix) != 0)
        return len;
    snprintf(prefix, sizeof(prefix), "%.*s", (int)(n - ns), t->name);
    if (!config_quant(quant, c, prefix, &enabled, &bits, &group) || !enabled || bits < 1 ||
        bits > 8)
        return len;
    return len / (size_t)bits * (size_t)quant_kernel_bits(bits);
}

enum status model_estimate(const char *dir, const struct model_load_opts *opts,
                           size_t *weight_bytes, size_t *scratch_bytes, char *err, size_t errlen)
{
    struct model_config c;
    cJSON *root = NULL;
    enum status rc = read_config(dir, &c, &root, err, errlen);
    if (rc != ST_OK)
        return rc;
    struct safetensors_set *set = NULL;
    rc = safetensors_set_open(dir, &set, err, errlen);
    if (rc != ST_OK) {
        cJSON_Delete(root);
        return rc;
    }
    bool widen = load_widens(opts);
    const cJSON *quant = model_config_quant_item(root);
    size_t w = 0;
    for (size_t i = 0; i < safetensors_set_n_files(set); i++) {
        struct safetensors *f = safetensors_set_file(set, i);
        for (size_t j = 0; j < safetensors_count(f); j++)
            w += loaded_tensor_bytes(safetensors_at(f, j), quant, &c, widen);
    }
    safetensors_set_close(set);
    cJSON_Delete(root);
    /* the largest matmul scratch any weight layout can need */
    size_t T = (size_t)opts_max_tokens(opts);
    size_t cols =
        max_sz(max_sz((size_t)c.hidden, (size_t)c.ffn), (size_t)c.n_heads * (size_t)c.head_dim);
    *weight_bytes = w;
    *scratch_bytes = scratch_total(&c, T, kernel_matmul_scratch_max(cols, T));
    return ST_OK;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_allocs; i++)
        weight_buf_free(m->allocs[i]);
    free(m->allocs);
    safetensors_set_close(m->files);
    threadpool_free(m->pool);
    free(m->w.layers);
    free(m->inv_freq);
    float *bufs[] = {m->s.x,    m->s.xb, m->s.q,   m->s.k,   m->s.v,    m->s.att_out,
                     m->s.proj, m->s.hb, m->s.hb2, m->s.att, m->s.rope, m->s.mm};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
    free(m->s.tok_seq);
    free(m->s.tok_pos);
    free(m);
}

const struct model_config *model_get_config(const struct model *m)
{
    return &m->cfg;
}

size_t model_weight_bytes(const struct model *m)
{
    return m->weight_bytes;
}

struct threadpool *model_threadpool(struct model *m)
{
    return m->pool;
}

size_t model_scratch_bytes(const struct model *m)
{
    return m->scratch_bytes;
}

int model_max_batch_tokens(const struct model *m)
{
    return m->max_tokens;
}

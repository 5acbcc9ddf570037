/*
 * tok_bpe.c - the BPE model: vocabulary and merge hash tables and the merge
 * loop.  Merging uses a binary heap of candidate pairs ordered by (rank,
 * position), so a word of n symbols costs O(n log n), not a rescan per merge.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

uint64_t tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int32_t tok_vocab_find(const struct tokenizer *tok, const struct tok_vocab_slot *table, size_t cap,
                       const char *s, size_t n)
{
    if (!cap)
        return -1;
    size_t mask = cap - 1;
    for (size_t i = tok_hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        const struct tok_vocab_slot *e = &table[i];
        if (e->id < 0)
            return -1;
        if (e->len == n && memcmp(tok->pool + e->off, s, n) == 0)
            return e->id;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

int tok_merge_find(const struct tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                   int32_t *new_id)
{
    if (!tok->merges_cap)
        return 0;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t mask = tok->merges_cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        const struct tok_merge_slot *e = &tok->merges[i];
        if (e->key == UINT64_MAX)
            return 0;
        if (e->key == key) {
            *rank = e->rank;
            *new_id = e->new_id;
            return 1;
        }
    }
}

/* ---- merge loop ------------------------------------------------------------ */

struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    int alive;
};

struct cand {
    int32_t rank, pos, right, new_id;
};

struct tok_bpe_scratch {
    struct sym *syms;
    size_t syms_cap;
    struct cand *heap;
    size_t heap_n, heap_cap;
};

struct tok_bpe_scratch *tok_bpe_scratch_new(void)
{
    return calloc(1, sizeof(struct tok_bpe_scratch));
}

void tok_bpe_scratch_free(struct tok_bpe_scratch *sc)
{
    if (!sc)
        return;
    free(sc->syms);
    free(sc->heap);
    free(sc);
}

static int cand_less(const struct cand *a, const struct cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static enum status heap_push(struct tok_bpe_scratch *sc, struct cand c)
{
    if (sc->heap_n == sc->heap_cap) {
        size_t cap = sc->heap_cap ? sc->heap_cap * 2 : 64;
        struct cand *h = realloc(sc->heap, cap * sizeof(*h));
        if (!h)
            return ST_ERR_NOMEM;
        sc->heap = h;
        sc->heap_cap = cap;
    }
    size_t i = sc->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &sc->heap[parent]))
            break;
        sc->heap[i] = sc->heap[parent];
        i = parent;
    }
    sc->heap[i] = c;
    return ST_OK;
}

static struct cand heap_pop(struct tok_bpe_scratch *sc)
{
    struct cand top = sc->heap[0];
    struct cand last = sc->heap[--sc->heap_n];
    size_t i = 0, n = sc->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < n && cand_less(&sc->heap[l], best)) {
            m = l;
            best = &sc->heap[l];
        }
        if (r < n && cand_less(&sc->heap[r], best))
            m = r;
        if (m == i)
            break;
        sc->heap[i] = sc->heap[m];
        i = m;
    }
    if (n)
        sc->heap[i] = last;
    return top;
}

static enum status push_pair(const struct tokenizer *tok, struct tok_bpe_scratch *sc, int32_t pos)
{
    if (pos < 0)
        return ST_OK;
    int32_t right = sc->syms[pos].next;
    if (right < 0)
        return ST_OK;
    int32_t rank, new_id;
    if (!tok_merge_find(tok, sc->syms[pos].id, sc->syms[right].id, &rank, &new_id))
        return ST_OK;
    return heap_push(sc, (struct cand){rank, pos, right, new_id});
}

static enum status append_id(int32_t id, int32_t **ids, size_t *n_ids, size_t *cap)
{
    if (*n_ids == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        int32_t *v = realloc(*ids, c * sizeof(*v));
        if (!v)
            return ST_ERR_NOMEM;
        *ids = v;
        *cap = c;
    }
    (*ids)[(*n_ids)++] = id;
    return ST_OK;
}

static enum status add_sym(struct tok_bpe_scratch *sc, size_t *n, int32_t id)
{
    if (*n == sc->syms_cap) {
        size_t cap = sc->syms_cap ? sc->syms_cap * 2 : 64;
        struct sym *s = realloc(sc->syms, cap * sizeof(*s));
        if (!s)
            return ST_ERR_NOMEM;
        sc->syms = s;
        sc->syms_cap = cap;
    }
    sc->syms[*n] = (struct sym){id, (int32_t)*n - 1, -1, 1};
    if (*n > 0)
        sc->syms[*n - 1].next = (int32_t)*n;
    (*n)++;
    return ST_OK;
}

enum status tok_bpe_word(const struct tokenizer *tok, struct tok_bpe_scratch *sc, const char *w,
                         size_t n, int32_t **ids, size_t *n_ids, size_t *cap)
{
    if (n == 0)
        return ST_OK;
    if (n > INT32_MAX / 8)
        return ST_ERR_RANGE;
    if (tok->ignore_merges) {
        int32_t id = tok_vocab_find(tok, tok->vocab, tok->vocab_cap, w, n);
        if (id >= 0)
            return append_id(id, ids, n_ids, cap);
    }
    /* One symbol per character; unknown characters become bytes or <unk>. */
    size_t ns = 0;
    int prev_unk = 0;
    enum status st;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = tok_utf8_next(u + i, n - i, &cp);
        size_t clen = k > 0 ? (size_t)k : (size_t)-k;
        int32_t id = tok_vocab_find(tok, tok->vocab, tok->vocab_cap, w + i, clen);
        if (id >= 0) {
            if ((st = add_sym(sc, &ns, id)) != ST_OK)
                return st;
            prev_unk = 0;
        } else {
            int bytes_ok = tok->byte_fallback;
            for (size_t j = 0; bytes_ok && j < clen; j++)
                bytes_ok = tok->byte_ids[u[i + j]] >= 0;
            if (bytes_ok) {
                for (size_t j = 0; j < clen; j++) {
                    if ((st = add_sym(sc, &ns, tok->byte_ids[u[i + j]])) != ST_OK)
                        return st;
                }
                prev_unk = 0;
            } else if (tok->unk_id >= 0) {
                if (!(tok->fuse_unk && prev_unk) && (st = add_sym(sc, &ns, tok->unk_id)) != ST_OK)
                    return st;
                prev_unk = 1;
            }
        }
        i += clen;
    }
    sc->heap_n = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        if ((st = push_pair(tok, sc, (int32_t)i)) != ST_OK)
            return st;
    }
    while (sc->heap_n > 0) {
        struct cand c = heap_pop(sc);
        struct sym *l = &sc->syms[c.pos];
        if (!l->alive || l->next != c.right)
            continue;
        struct sym *r = &sc->syms[c.right];
        int32_t rank, new_id;
        if (!tok_merge_find(tok, l->id, r->id, &rank, &new_id) || new_id != c.new_id ||
            rank != c.rank)
            continue;
        l->id = new_id;
        l->next = r->next;
        if (r->next >= 0)
            sc->syms[r->next].prev = c.pos;
        r->alive = 0;
        if ((st = push_pair(tok, sc, l->prev)) != ST_OK ||
            (st = push_pair(tok, sc, c.pos)) != ST_OK)
            return st;
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = sc->syms[i].next) {
        if ((st = append_id(sc->syms[i].id, ids, n_ids, cap)) != ST_OK)
            return st;
    }
    return ST_OK;
}

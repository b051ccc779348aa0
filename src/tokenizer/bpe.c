/*
 * tokenizer/bpe: GPT-2's byte <-> unicode table, and byte-pair merging of one pre-tokenizer piece.
 *
 * Not here: building the merge table (tokenizer.c, load_merges), splitting (pretok.c).
 */
#include "internal.h"

#include <string.h>

/* GPT-2's byte <-> unicode table: bytes that print (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves, the
 * other 68 (controls, space, DEL, NBSP, soft hyphen) for U+0100 + n in byte order. */

static int byte_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(unsigned b) {
    if (byte_printable(b)) return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++) n += !byte_printable(x);
    return 0x100 + n;
}

/* The byte a code point of a stored token text stands for, or -1. */
int tok_cp_to_byte(uint32_t c) {
    static const uint8_t low[68] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x7F,
        0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90,
        0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xAD,
    };
    if (c < 0x100) return byte_printable(c) ? (int)c : -1;
    if (c < 0x100 + 68) return low[c - 0x100];
    return -1;
}

/* ---------------------------------------------------------------------------------------------------- */
/* BPE: a piece's bytes start as byte tokens; the adjacent pair with the lowest merge rank merges (the
 * leftmost on ties) until no pair has a merge. Short pieces: a linear scan per merge; long ones: a heap,
 * with entries checked for staleness when popped (as Hugging Face's word.rs does). */

#define BPE_SMALL 64

/* Heap entries: rank << 32 | pos (the left symbol's index), smallest first: the lowest rank, leftmost on
 * ties. A popped entry is stale unless the pair now at pos still has that rank (a rank names one pair). */
static void heap_push(uint64_t *h, size_t *n, uint64_t x) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= x) break;
        h[i] = h[p], i = p;
    }
    h[i] = x;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (x <= h[c]) break;
        h[i] = h[c], i = c;
    }
    h[i] = x;
    return top;
}

static bool bpe_large(const Tokenizer *t, const uint8_t *p, size_t n, Out *o, Scratch *sc) {
    if (!tok_grow(&sc->bpe, &sc->bpe_cap, n * 3 * sizeof(int32_t) + 3 * n * sizeof(uint64_t) + 8))
        return false;
    uint64_t *heap = sc->bpe; /* (3n,) every pair ever adjacent */
    int32_t *ids = (int32_t *)(heap + 3 * n), *prev = ids + n, *next = prev + n; /* (n,) each: a list */
    size_t m = 0, hn = 0;
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] >= 0) ids[m++] = t->byte_id[p[i]];
    for (size_t i = 0; i < m; i++) prev[i] = (int32_t)i - 1, next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    int32_t id;
    for (size_t i = 0; i + 1 < m; i++) {
        uint32_t r = merge_find(t, ids[i], ids[i + 1], &id);
        if (r != UINT32_MAX) heap_push(heap, &hn, (uint64_t)r << 32 | i);
    }
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        int32_t pos = (int32_t)(uint32_t)top, nx = next[pos];
        if (ids[pos] < 0 || nx < 0 || merge_find(t, ids[pos], ids[nx], &id) != (uint32_t)(top >> 32))
            continue;
        ids[pos] = id, ids[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        uint32_t r;
        if (prev[pos] >= 0 && (r = merge_find(t, ids[prev[pos]], ids[pos], &id)) != UINT32_MAX)
            heap_push(heap, &hn, (uint64_t)r << 32 | (uint32_t)prev[pos]);
        if (next[pos] >= 0 && (r = merge_find(t, ids[pos], ids[next[pos]], &id)) != UINT32_MAX)
            heap_push(heap, &hn, (uint64_t)r << 32 | (uint32_t)pos);
    }
    for (int32_t i = m ? 0 : -1; i >= 0; i = next[i]) out_push(o, ids[i]);
    return true;
}

/* The stored text of raw bytes (each byte through the byte table) into buf (2n bytes); its length. */
static size_t bytes_to_text(const uint8_t *p, size_t n, char *buf) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += utf8_put((uint8_t *)buf + o, tok_byte_to_cp(p[i]));
    return o;
}

#define BPE_MAX ((size_t)1 << 30) /* a longer piece (a GiB of letters) is merged in parts of this size */

bool tok_bpe(const Tokenizer *t, const uint8_t *p, size_t n, Out *o, Scratch *sc) {
    if (n > BPE_MAX) return tok_bpe(t, p, BPE_MAX, o, sc) && tok_bpe(t, p + BPE_MAX, n - BPE_MAX, o, sc);
    if (n == 1) {
        if (t->byte_id[p[0]] >= 0) out_push(o, t->byte_id[p[0]]);
        return true;
    }
    if (t->pre->ignore_merges && n <= 128) {
        char buf[256];
        int32_t id = tok_vocab_find(t, buf, bytes_to_text(p, n, buf));
        if (id >= 0) {
            out_push(o, id);
            return true;
        }
    }
    if (n > BPE_SMALL) return bpe_large(t, p, n, o, sc);
    int32_t ids[BPE_SMALL], nid[BPE_SMALL]; /* symbols; nid[i]: the merge of symbols i and i+1 */
    uint32_t rank[BPE_SMALL];               /* rank[i]: of that merge, UINT32_MAX if none */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] >= 0) ids[m++] = t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < m; i++) rank[i] = merge_find(t, ids[i], ids[i + 1], &nid[i]);
    while (m > 1) {
        size_t b = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[b]) b = i;
        if (rank[b] == UINT32_MAX) break;
        ids[b] = nid[b];
        memmove(ids + b + 1, ids + b + 2, (m - b - 2) * sizeof *ids);
        if (b + 2 < m) {
            memmove(rank + b + 1, rank + b + 2, (m - b - 3) * sizeof *rank);
            memmove(nid + b + 1, nid + b + 2, (m - b - 3) * sizeof *nid);
        }
        m--;
        if (b > 0) rank[b - 1] = merge_find(t, ids[b - 1], ids[b], &nid[b - 1]);
        if (b + 1 < m) rank[b] = merge_find(t, ids[b], ids[b + 1], &nid[b]);
    }
    for (size_t i = 0; i < m; i++) out_push(o, ids[i]);
    return true;
}

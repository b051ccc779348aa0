/*
 * tokenizer/pretok: the pre-tokenizers, one hand-written scanner per regex family. Each returns the end of
 * the piece that starts at s[i]. The regexes, with Oniguruma's semantics (at each position the first
 * alternative that matches wins, quantifiers greedy, backtracking only where written out), are in PreKind
 * (internal.h); docs/tokenizer.md walks through why each branch equals its alternative.
 *
 * Not here: normalization (unicode.c), special tokens (tokenizer.c), merges (bpe.c).
 */
#include "internal.h"

/* The end of the run from i of characters that have some bit of mask (want) or none (!want). */
static size_t run_of(const uint8_t *s, size_t n, size_t i, unsigned mask, bool want) {
    while (i < n) {
        size_t l;
        unsigned k = cls_at(s, n, i, &l);
        if (((k & mask) != 0) != want) break;
        i += l;
    }
    return i;
}

/* The end of the run from i of characters with a bit of mask and none of stop. */
static size_t run_of_stop(const uint8_t *s, size_t n, size_t i, unsigned mask, unsigned stop) {
    while (i < n) {
        size_t l;
        unsigned k = cls_at(s, n, i, &l);
        if (!(k & mask) || (k & stop)) break;
        i += l;
    }
    return i;
}

static size_t run_crlf(const uint8_t *s, size_t n, size_t i) {
    while (i < n && (s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

/* Length of s|t|re|ve|m|ll|d at s[i] (after the apostrophe), or 0. Case-insensitive (ci) is (?i:...):
 * Unicode simple case folding, so S, T, RE, ... and U+017F (long s, folds to s) match too. */
static size_t contraction(const uint8_t *s, size_t n, size_t i, bool ci) {
    if (i >= n) return 0;
    unsigned c = s[i], c2 = i + 1 < n ? s[i + 1] : 0;
    if (ci) {
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c2 >= 'A' && c2 <= 'Z') c2 += 32;
        if (c == 0xC5 && c2 == 0xBF) return 2; /* ſ */
    }
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 1;
    if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l')) return 2;
    return 0;
}

/* qwen2 (max_digits 1) and llama-bpe (3). */
static size_t split_qwen(const uint8_t *s, size_t n, size_t i, unsigned max_digits) {
    uint8_t c = s[i];
    size_t l0, l1, m;
    unsigned k0 = cls_at(s, n, i, &l0);
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c == '\'' && (m = contraction(s, n, i + 1, true))) return i + 1 + m;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 & CL_L) return run_of(s, n, i + l0, CL_L, true);
    if (c != '\r' && c != '\n' && !(k0 & CL_N) && i + l0 < n && (cls_at(s, n, i + l0, &l1) & CL_L))
        return run_of(s, n, i + l0 + l1, CL_L, true);
    /* \p{N}{1,max_digits} */
    if (k0 & CL_N) {
        size_t j = i + l0;
        for (unsigned d = 1; d < max_digits && j < n && (cls_at(s, n, j, &l1) & CL_N); d++) j += l1;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c == ' ' && i + 1 < n && !(cls_at(s, n, i + 1, &l1) & OTHER_MASK))
        return run_crlf(s, n, run_of(s, n, i + 1 + l1, OTHER_MASK, false));
    if (!(k0 & OTHER_MASK)) return run_crlf(s, n, run_of(s, n, i + l0, OTHER_MASK, false));
    /* c is \s. \s*[\r\n]+ backtracks to the last \r or \n of the run; else \s+(?!\S) leaves the run's last
     * character to the next piece when a non-space follows and the run has two or more; else \s+. */
    size_t j = i, last = i, nl = SIZE_MAX;
    while (j < n) {
        size_t l;
        if (!(cls_at(s, n, j, &l) & CL_S)) break;
        if (s[j] == '\r' || s[j] == '\n') nl = j;
        last = j;
        j += l;
    }
    if (nl != SIZE_MAX) return nl + 1;
    return j == n || last == i ? j : last;
}

/* gpt2, and smollm (isolate_digits: the Digits pre-tokenizer first makes every numeric character (CL_D:
 * Rust's is_numeric, a superset of \p{N}) a piece of its own, so it also ends the text the GPT-2 pattern
 * sees: runs stop there, which matters for \s+(?!\S) before a digit). */
static size_t split_gpt2(const uint8_t *s, size_t n, size_t i, bool isolate_digits) {
    uint8_t c = s[i];
    size_t l0, l1, m;
    unsigned k0 = cls_at(s, n, i, &l0);
    const unsigned dig = isolate_digits ? CL_D : 0, other = OTHER_MASK | dig;
    if (k0 & dig) return i + l0;
    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (c == '\'' && (m = contraction(s, n, i + 1, false))) return i + 1 + m;
    /*  ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+ */
    if (c == ' ' && i + 1 < n) {
        unsigned k1 = cls_at(s, n, i + 1, &l1);
        if ((k1 & CL_L) && !(k1 & dig)) return run_of_stop(s, n, i + 1 + l1, CL_L, dig);
        if ((k1 & CL_N) && !isolate_digits) return run_of(s, n, i + 1 + l1, CL_N, true);
        if (!(k1 & other)) return run_of(s, n, i + 1 + l1, other, false);
    }
    if (k0 & CL_L) return run_of_stop(s, n, i + l0, CL_L, dig);
    if (k0 & CL_N) return run_of(s, n, i + l0, CL_N, true);
    if (!(k0 & other)) return run_of(s, n, i + l0, other, false);
    /* \s+(?!\S)|\s+ */
    size_t j = i, last = i;
    while (j < n) {
        size_t l;
        if (!(cls_at(s, n, j, &l) & CL_S)) break;
        last = j;
        j += l;
    }
    bool at_end = j == n || (cls_at(s, n, j, &l1) & dig);
    return at_end || last == i ? j : last;
}

size_t tok_pretok_next(const PreType *p, const uint8_t *s, size_t n, size_t i) {
    switch (p->kind) {
    case PRE_QWEN2:
        return split_qwen(s, n, i, 1);
    case PRE_LLAMA3:
        return split_qwen(s, n, i, 3);
    case PRE_SMOLLM:
        return split_gpt2(s, n, i, true);
    case PRE_GPT2:
        break;
    }
    return split_gpt2(s, n, i, false);
}

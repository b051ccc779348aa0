/*
 * `orcd tokenize -m MODEL [--ids|--pieces|--split|--roundtrip|--stream] [--special] [--bos] [--raw]
 *  [--batch0] [--bench] TEXT|-`: the model's tokenizer on a text, for users, tests and benchmarks.
 *
 * TEXT is taken byte for byte (`-`: all of stdin, no newline stripped). Output, one line per text:
 *   (default)    one token per line: id, then its bytes quoted
 *   --ids        the ids separated by spaces
 *   --pieces     each token's bytes quoted ("Hello" " world"), separated by spaces
 *   --split      the pre-tokenizer's pieces, quoted the same way
 *   --roundtrip  decode(encode(TEXT)): raw bytes, no newline (with --batch0: NUL after each record)
 *   --stream     the streaming decoder's output for encode(TEXT) fed token by token (likewise)
 * Quoting: printable ASCII and well-formed UTF-8 as is; \" \\ \n \t \r; any other byte \xHH.
 * --special matches special tokens in TEXT (and decodes them in --roundtrip/--stream); --bos adds BOS
 * when the model asks for it; --raw skips the model's normalization (NFC for qwen2).
 * --batch0: stdin holds NUL-terminated records (a last unterminated one counts if not empty), each
 * encoded on its own. --bench: one line on stderr with the time spent encoding (not loading or I/O).
 *
 * Not here: generation, chat templates (orcd template).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "cli.h"

#include "../gguf.h"
#include "../log.h"
#include "../tokenizer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum Mode { M_TABLE, M_IDS, M_PIECES, M_SPLIT, M_ROUNDTRIP, M_STREAM } Mode;

typedef struct Opts {
    Mode mode;
    unsigned flags;
    bool batch, bench;
} Opts;

static const char USAGE[] =
    "usage: orcd tokenize -m MODEL.gguf [--ids|--pieces|--split|--roundtrip|--stream] "
    "[--special] [--bos] [--raw] [--batch0] [--bench] TEXT|-\n";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Length of the well-formed UTF-8 character at s (n bytes left), 0 if none. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!need || need > n) return 0;
    unsigned char lo = c == 0xE0   ? 0xA0
                       : c == 0xF0 ? 0x90
                                   : 0x80,
                  hi = c == 0xED   ? 0x9F
                       : c == 0xF4 ? 0x8F
                                   : 0xBF;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

static void put_quoted(FILE *o, const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    fputc('"', o);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t l = c >= 0x80 ? utf8_char(s + i, n - i) : 0;
        if (l) {
            fwrite(s + i, 1, l, o);
            i += l;
            continue;
        }
        if (c == '"' || c == '\\')
            fprintf(o, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", o);
        else if (c == '\t')
            fputs("\\t", o);
        else if (c == '\r')
            fputs("\\r", o);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(o, "\\x%02x", c);
        else
            fputc(c, o);
        i++;
    }
    fputc('"', o);
}

typedef struct SplitCtx {
    FILE *o;
    int first;
} SplitCtx;

static void print_split(void *ctx, const char *piece, size_t len, int32_t special) {
    SplitCtx *c = ctx;
    (void)special;
    if (!c->first) fputc(' ', c->o);
    c->first = 0;
    put_quoted(c->o, piece, len);
}

/* Output of one text. ids: (n,) its tokens. */
static int print_result(FILE *o, const Tokenizer *tok, const Opts *op, const char *text, size_t len,
                        const int32_t *ids, size_t n) {
    unsigned dflags = (op->flags & TOKENIZE_PARSE_SPECIAL) ? TOKENIZER_DECODE_SPECIAL : 0;
    switch (op->mode) {
    case M_TABLE:
        for (size_t i = 0; i < n; i++) {
            size_t l;
            const char *p = tokenizer_piece(tok, ids[i], &l);
            fprintf(o, "%8d  ", ids[i]);
            put_quoted(o, p, l);
            fputc('\n', o);
        }
        return 0;
    case M_IDS: {
        char buf[16];
        for (size_t i = 0; i < n; i++) {
            int k = snprintf(buf, sizeof buf, i ? " %d" : "%d", ids[i]);
            fwrite(buf, 1, (size_t)k, o);
        }
        fputc('\n', o);
        return 0;
    }
    case M_PIECES:
        for (size_t i = 0; i < n; i++) {
            size_t l;
            const char *p = tokenizer_piece(tok, ids[i], &l);
            if (i) fputc(' ', o);
            put_quoted(o, p, l);
        }
        fputc('\n', o);
        return 0;
    case M_SPLIT: {
        SplitCtx c = {o, 1};
        if (tokenizer_split(tok, text, len, op->flags, print_split, &c)) return -1;
        fputc('\n', o);
        return 0;
    }
    case M_ROUNDTRIP: {
        int64_t need = tokenizer_decode(tok, ids, n, dflags, NULL, 0);
        char *buf = need > 0 ? malloc((size_t)need) : NULL;
        if (need < 0 || (need > 0 && !buf)) return -1;
        tokenizer_decode(tok, ids, n, dflags, buf, (size_t)need);
        fwrite(buf, 1, (size_t)need, o);
        free(buf);
        if (op->batch) fputc(0, o);
        return 0;
    }
    case M_STREAM: {
        TokenDecoder d;
        if (token_decoder_init(&d, tok, dflags)) return -1;
        size_t l;
        for (size_t i = 0; i < n; i++) {
            const char *p = token_decoder_push(&d, ids[i], &l);
            fwrite(p, 1, l, o);
        }
        const char *p = token_decoder_flush(&d, &l);
        fwrite(p, 1, l, o);
        token_decoder_free(&d);
        if (op->batch) fputc(0, o);
        return 0;
    }
    }
    return 0;
}

static char *read_all(FILE *in, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap) {
            if (ferror(in)) break;
            *len = n;
            return buf;
        }
        char *nb = realloc(buf, cap *= 2);
        if (!nb) break;
        buf = nb;
    }
    free(buf);
    return NULL;
}

/* Encode into *ids (grown as needed); the count, or negative on failure. */
static int64_t encode_grow(const Tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t **ids,
                           size_t *cap) {
    int64_t n = tokenizer_encode(tok, text, len, flags, *ids, *cap);
    if (n > (int64_t)*cap) {
        int32_t *p = realloc(*ids, (size_t)n * sizeof *p);
        if (!p) return TOKENIZER_ENOMEM;
        *ids = p, *cap = (size_t)n;
        n = tokenizer_encode(tok, text, len, flags, *ids, *cap);
    }
    return n;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *text = NULL;
    Opts op = {M_TABLE, 0, false, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(a, "--ids"))
            op.mode = M_IDS;
        else if (!strcmp(a, "--pieces"))
            op.mode = M_PIECES;
        else if (!strcmp(a, "--split"))
            op.mode = M_SPLIT;
        else if (!strcmp(a, "--roundtrip"))
            op.mode = M_ROUNDTRIP;
        else if (!strcmp(a, "--stream"))
            op.mode = M_STREAM;
        else if (!strcmp(a, "--special"))
            op.flags |= TOKENIZE_PARSE_SPECIAL;
        else if (!strcmp(a, "--bos"))
            op.flags |= TOKENIZE_ADD_BOS;
        else if (!strcmp(a, "--raw"))
            op.flags |= TOKENIZE_NO_NORMALIZE;
        else if (!strcmp(a, "--batch0"))
            op.batch = true;
        else if (!strcmp(a, "--bench"))
            op.bench = true;
        else if (!text && (a[0] != '-' || !strcmp(a, "-")))
            text = a;
        else if (!text && !strcmp(a, "--") && i + 1 < argc)
            text = argv[++i];
        else {
            log_error("tokenize: unexpected argument \"%s\"", a);
            fputs(USAGE, stderr);
            return 1;
        }
    }
    if (!path) {
        log_error("tokenize: no model: expected -m MODEL.gguf");
        fputs(USAGE, stderr);
        return 1;
    }
    if (!text && !op.batch) {
        log_error("tokenize: no text: expected TEXT, - (stdin) or --batch0");
        fputs(USAGE, stderr);
        return 1;
    }
    char err[512];
    GGUFFile *f;
    double t0 = now();
    if (gguf_open(&f, path, err, sizeof err) != GGUF_OK) {
        log_error("tokenize: %s: %s", path, err);
        return 1;
    }
    Tokenizer *tok;
    int rc = tokenizer_load(&tok, f, err, sizeof err);
    gguf_close(f);
    if (rc) {
        log_error("tokenize: %s: %s", path, err);
        return 1;
    }
    double load_s = now() - t0;

    char *input = NULL;
    size_t in_len = 0;
    if (op.batch || !strcmp(text, "-")) {
        if (!(input = read_all(stdin, &in_len))) {
            log_error("tokenize: cannot read stdin");
            tokenizer_free(tok);
            return 1;
        }
    } else {
        in_len = strlen(text);
    }
    const char *src = input ? input : text;

    FILE *o = stdout;
    static char obuf[1 << 16];
    setvbuf(o, obuf, _IOFBF, sizeof obuf);
    int32_t *ids = NULL;
    size_t cap = 0, records = 0, bytes = 0, tokens = 0;
    double enc_s = 0;
    rc = 0;
    for (size_t pos = 0; pos < in_len || (!op.batch && records == 0);) {
        const char *end = op.batch ? memchr(src + pos, 0, in_len - pos) : NULL;
        size_t len = op.batch ? (end ? (size_t)(end - src) : in_len) - pos : in_len;
        double t1 = now();
        int64_t n = encode_grow(tok, src + pos, len, op.flags, &ids, &cap);
        enc_s += now() - t1;
        if (n < 0 || print_result(o, tok, &op, src + pos, len, ids, (size_t)n)) {
            log_error("tokenize: out of memory");
            rc = 1;
            break;
        }
        records++, bytes += len, tokens += (size_t)n;
        pos += len + 1;
    }
    fflush(o);
    if (op.bench)
        fprintf(stderr,
                "tokenize: %zu records, %zu bytes, %zu tokens; load %.1f ms; encode %.3f s, %.2f MB/s\n",
                records, bytes, tokens, 1e3 * load_s, enc_s, enc_s > 0 ? (double)bytes / enc_s / 1e6 : 0.0);
    free(ids);
    free(input);
    tokenizer_free(tok);
    return rc;
}

/*
 * chat: template families, recognised by the markers each family's template must print; the default
 * system prompt read from the template's own string literals; rendering per family.
 *
 * Not here: a Jinja interpreter. The only parsing of the template is a scan for its string literals
 * (inside {{ }} and {% %}), decoded the way Jinja's lexer decodes them (Python escapes).
 */
#define _GNU_SOURCE /* memmem */
#include "chat.h"

#include "log.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has(const char *t, size_t n, const char *needle) {
    return t && memmem(t, n, needle, strlen(needle)) != NULL;
}

ChatFamily chat_family(const char *tmpl, size_t len) {
    if (!tmpl || len == 0) return CHAT_NONE;
    if (has(tmpl, len, "<|start_header_id|>") && has(tmpl, len, "<|eot_id|>")) return CHAT_LLAMA3;
    if (has(tmpl, len, "<|im_start|>") && has(tmpl, len, "<|im_end|>")) return CHAT_CHATML;
    return CHAT_UNKNOWN;
}

const char *chat_family_name(ChatFamily f) {
    switch (f) {
    case CHAT_NONE:
        return "none";
    case CHAT_CHATML:
        return "chatml";
    case CHAT_LLAMA3:
        return "llama3";
    default:
        return "unknown";
    }
}

const char *chat_role_name(ChatRole r) {
    return r == CHAT_SYSTEM ? "system" : r == CHAT_USER ? "user" : "assistant";
}

int chat_role_parse(const char *name, ChatRole *out) {
    static const ChatRole roles[] = {CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT};
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(name, chat_role_name(roles[i]))) {
            *out = roles[i];
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------------------------------------------- */
/* a growable byte buffer */

typedef struct Buf {
    char *p;
    size_t n, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

/* ---------------------------------------------------------------------------------------------------- */
/* the template's string literals */

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static void put_cp(Buf *b, uint32_t c) {
    char u[4];
    size_t n;
    if (c < 0x80)
        u[0] = (char)c, n = 1;
    else if (c < 0x800)
        u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    else if (c < 0x10000)
        u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | (c >> 6 & 0x3F)),
        u[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | c >> 18), u[1] = (char)(0x80 | (c >> 12 & 0x3F)),
        u[2] = (char)(0x80 | (c >> 6 & 0x3F)), u[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    buf_put(b, u, n);
}

/* Decode the literal body s[0..n) (between the quotes) as Jinja does: newlines normalised to \n, then
 * Python's unicode-escape (\n \t \r \\ \' \" \a \b \f \v, octal, \xHH, \uHHHH, \UHHHHHHHH; an unknown
 * escape stays as written). */
static void literal_decode(Buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] == '\n') i++;
            buf_put(b, "\n", 1);
            continue;
        }
        if (c != '\\' || i + 1 == n) {
            buf_put(b, &c, 1);
            continue;
        }
        char e = s[++i];
        const char *simple = strchr("ntr\\'\"abfv", e);
        if (e && simple) {
            static const char out[] = "\n\t\r\\'\"\a\b\f\v";
            buf_put(b, &out[simple - "ntr\\'\"abfv"], 1);
        } else if (e >= '0' && e <= '7') {
            uint32_t v = 0;
            size_t k = 0;
            while (k < 3 && i < n && s[i] >= '0' && s[i] <= '7') v = v * 8 + (uint32_t)(s[i++] - '0'), k++;
            i--;
            put_cp(b, v);
        } else if (e == 'x' || e == 'u' || e == 'U') {
            size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8, k;
            uint32_t v = 0;
            for (k = 0; k < digits && i + 1 + k < n && hexval(s[i + 1 + k]) >= 0; k++)
                v = v * 16 + (uint32_t)hexval(s[i + 1 + k]);
            if (k == digits && v < 0x110000 && !(v >= 0xD800 && v < 0xE000)) {
                put_cp(b, v);
                i += digits;
            } else {
                buf_put(b, s + i - 1, 2); /* Python would refuse it; keep the text */
            }
        } else {
            buf_put(b, s + i - 1, 2);
        }
    }
}

/* Calls fn on each decoded string literal inside the template's {{ }} and {% %} blocks, in order, until
 * fn returns nonzero. */
static int literals_each(const char *t, size_t n, int (*fn)(void *ctx, const char *s, size_t len),
                         void *ctx) {
    size_t i = 0;
    while (i + 1 < n) {
        if (t[i] != '{' || (t[i + 1] != '{' && t[i + 1] != '%' && t[i + 1] != '#')) {
            i++;
            continue;
        }
        char kind = t[i + 1];
        i += 2;
        if (kind == '#') { /* comment */
            const char *e = memmem(t + i, n - i, "#}", 2);
            i = e ? (size_t)(e - t) + 2 : n;
            continue;
        }
        char close = kind == '{' ? '}' : '%';
        while (i < n) {
            char c = t[i];
            if (c == close && i + 1 < n && t[i + 1] == '}') {
                i += 2;
                break;
            }
            if (c != '\'' && c != '"') {
                i++;
                continue;
            }
            size_t j = i + 1;
            while (j < n && t[j] != c) j += t[j] == '\\' ? 2 : 1;
            if (j >= n) return 0;
            Buf b = {0};
            literal_decode(&b, t + i + 1, j - i - 1);
            int stop = b.oom ? 0 : fn(ctx, b.p ? b.p : "", b.n);
            free(b.p);
            if (stop) return stop;
            i = j + 1;
        }
    }
    return 0;
}

typedef struct FindDefault {
    const char *prefix, *suffix; /* the family's system turn around its text */
    char *found;
} FindDefault;

/* A literal PREFIX + TEXT + SUFFIX... with TEXT not empty: the default system prompt. */
static int find_default(void *ctx, const char *s, size_t len) {
    FindDefault *fd = ctx;
    size_t pl = strlen(fd->prefix);
    if (len <= pl || memcmp(s, fd->prefix, pl)) return 0;
    const char *e = memmem(s + pl, len - pl, fd->suffix, strlen(fd->suffix));
    if (!e || e == s + pl) return 0;
    size_t n = (size_t)(e - s) - pl;
    fd->found = malloc(n + 1);
    if (!fd->found) return -1;
    memcpy(fd->found, s + pl, n);
    fd->found[n] = 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------------------- */

int chat_template_init(ChatTemplate *t, const char *tmpl, size_t len, const char *bos) {
    memset(t, 0, sizeof *t);
    t->family = chat_family(tmpl, len);
    if (t->family == CHAT_NONE)
        log_warn("chat: the model has no chat template: rendering prompts as ChatML");
    else if (t->family == CHAT_UNKNOWN)
        log_warn("chat: chat template not recognised (%zu bytes, neither ChatML nor Llama 3): rendering "
                 "prompts as "
                 "ChatML without a default system prompt",
                 len);
    FindDefault fd = {NULL, NULL, NULL};
    if (t->family == CHAT_CHATML) fd.prefix = "<|im_start|>system\n", fd.suffix = "<|im_end|>";
    if (t->family == CHAT_LLAMA3)
        fd.prefix = "<|start_header_id|>system<|end_header_id|>\n\n", fd.suffix = "<|eot_id|>";
    if (fd.prefix && literals_each(tmpl, len, find_default, &fd) < 0) return -1;
    t->default_system = fd.found;
    bool prints_bos = t->family == CHAT_LLAMA3 && has(tmpl, len, "bos_token");
    t->bos = strdup(prints_bos && bos ? bos : "");
    t->trim = t->family == CHAT_LLAMA3 && (has(tmpl, len, "| trim") || has(tmpl, len, "|trim"));
    if (!t->bos) {
        chat_template_free(t);
        return -1;
    }
    return 0;
}

int chat_template_load(ChatTemplate *t, const GGUFFile *f, char *err, size_t errlen) {
    GGUFStr tmpl = {NULL, 0}, s;
    int rc = gguf_get_str(f, "tokenizer.chat_template", &tmpl);
    if (rc != GGUF_OK && rc != GGUF_ENOKEY) {
        snprintf(err, errlen, "tokenizer.chat_template: expected a string, found another type");
        return -1;
    }
    /* the BOS token's text */
    char bos[256] = "";
    int64_t id;
    GGUFArray toks;
    if (gguf_get_int(f, "tokenizer.ggml.bos_token_id", &id) == GGUF_OK &&
        gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) == GGUF_OK && id >= 0 && (uint64_t)id < toks.n) {
        GGUFStrIter it = gguf_str_iter(&toks);
        for (int64_t i = 0; gguf_str_next(&it, &s); i++)
            if (i == id) {
                if (s.len < sizeof bos) memcpy(bos, s.ptr, s.len), bos[s.len] = 0;
                break;
            }
    }
    if (chat_template_init(t, tmpl.ptr, (size_t)tmpl.len, bos)) {
        snprintf(err, errlen, "chat: out of memory");
        return -1;
    }
    return 0;
}

void chat_template_free(ChatTemplate *t) {
    free(t->default_system);
    free(t->bos);
    t->default_system = t->bos = NULL;
}

/* Python's str.isspace() for one code point. */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* The code point at s[i] and its length, or 0xFFFFFFFF (length 1) for malformed UTF-8. */
static uint32_t cp_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    unsigned char c = s[i];
    size_t k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
    *len = 1;
    if (k == 0) return c;
    if (k == 9 || i + k >= n) return 0xFFFFFFFFu;
    uint32_t v = c & (0x3F >> k);
    for (size_t j = 1; j <= k; j++) {
        if ((s[i + j] & 0xC0) != 0x80) return 0xFFFFFFFFu;
        v = v << 6 | (s[i + j] & 0x3F);
    }
    if (v < min[k]) return 0xFFFFFFFFu;
    *len = k + 1;
    return v;
}

static void put_content(Buf *b, const ChatTemplate *t, const ChatMessage *m) {
    const unsigned char *s = (const unsigned char *)m->content;
    size_t lo = 0, hi = m->len, l;
    if (t->trim) {
        while (lo < hi && py_space(cp_at(s, hi, lo, &l))) lo += l;
        while (hi > lo) { /* back to the start of the last character */
            size_t st = hi - 1;
            while (st > lo && hi - st < 4 && (s[st] & 0xC0) == 0x80) st--;
            if (!py_space(cp_at(s, hi, st, &l)) || st + l != hi) break;
            hi = st;
        }
    }
    buf_put(b, m->content + lo, hi - lo);
}

int chat_render(const ChatTemplate *t, const ChatMessage *msgs, size_t n, bool add_generation_prompt,
                char **out, size_t *out_len) {
    Buf b = {0};
    buf_put(&b, "", 0);
    bool llama3 = t->family == CHAT_LLAMA3;
    const char *pre = llama3 ? "<|start_header_id|>" : "<|im_start|>";
    const char *mid = llama3 ? "<|end_header_id|>\n\n" : "\n";
    const char *end = llama3 ? "<|eot_id|>" : "<|im_end|>\n";
    if (n) buf_str(&b, t->bos);
    if (t->default_system && (n == 0 || msgs[0].role != CHAT_SYSTEM)) {
        buf_str(&b, pre), buf_str(&b, "system"), buf_str(&b, mid);
        buf_str(&b, t->default_system), buf_str(&b, end);
    }
    for (size_t i = 0; i < n; i++) {
        buf_str(&b, pre), buf_str(&b, chat_role_name(msgs[i].role)), buf_str(&b, mid);
        put_content(&b, t, &msgs[i]);
        buf_str(&b, end);
    }
    if (add_generation_prompt) buf_str(&b, pre), buf_str(&b, "assistant"), buf_str(&b, mid);
    if (b.oom) {
        free(b.p);
        return -1;
    }
    *out = b.p, *out_len = b.n;
    return 0;
}

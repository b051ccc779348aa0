/*
 * gguf: the GGUF parser (format in gguf.h). One pass over the bytes with a bounds-checked cursor, then
 * the cross-checks (duplicates, alignment, tensor extents and overlaps). Allocations: the metadata and
 * tensor tables and their hash indexes, a few per file, never one per tensor.
 *
 * Not here: any meaning of the keys, or touching tensor data beyond bounds.
 */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"

#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------------- */
/* errors */

typedef struct Cursor {
    const uint8_t *base;
    uint64_t size, pos;
    char *err;
    size_t errlen;
} Cursor;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(Cursor *c, const char *fmt, ...) {
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return GGUF_EFORMAT;
}

/* A printable copy of an untrusted name for messages: at most 80 bytes, control and non-ASCII bytes
 * as \xHH. */
typedef struct NameBuf {
    char s[80 * 4 + 8];
} NameBuf;

static NameBuf shown(GGUFStr n) {
    NameBuf b;
    size_t o = 0;
    uint64_t lim = n.len < 80 ? n.len : 80;
    for (uint64_t i = 0; i < lim; i++) {
        unsigned char ch = (unsigned char)n.ptr[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') b.s[o++] = (char)ch;
        else o += (size_t)snprintf(b.s + o, sizeof b.s - o, "\\x%02x", ch);
    }
    if (n.len > lim) { memcpy(b.s + o, "...", 3); o += 3; }
    b.s[o] = 0;
    return b;
}

/* ---------------------------------------------------------------------------------------------------- */
/* reading */

typedef unsigned long long ull; /* for printf */

static uint64_t left(const Cursor *c) {
    return c->size - c->pos;
}

static int need(Cursor *c, uint64_t n, const char *what) {
    if (n <= left(c)) return GGUF_OK;
    return fail(c, "truncated file: expected %llu bytes of %s at offset %llu, found %llu (file size %llu)",
                (ull)n, what, (ull)c->pos, (ull)left(c), (ull)c->size);
}

static uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int read_u32(Cursor *c, uint32_t *v, const char *what) {
    int rc = need(c, 4, what);
    if (rc) return rc;
    *v = load_u32(c->base + c->pos);
    c->pos += 4;
    return GGUF_OK;
}

static int read_u64(Cursor *c, uint64_t *v, const char *what) {
    int rc = need(c, 8, what);
    if (rc) return rc;
    *v = load_u64(c->base + c->pos);
    c->pos += 8;
    return GGUF_OK;
}

/* A length-prefixed string of at most `max` bytes (0 for no limit beyond the file) and at least `min`. */
static int read_str(Cursor *c, GGUFStr *s, uint64_t min, uint64_t max, const char *what) {
    uint64_t len;
    int rc = read_u64(c, &len, what);
    if (rc) return rc;
    if (len > left(c))
        return fail(c, "%s: string length %llu at offset %llu runs past the end of the file (%llu bytes left)",
                    what, (ull)len, (ull)(c->pos - 8), (ull)left(c));
    if (len < min || (max && len > max))
        return fail(c, "%s: length %llu out of range: expected %llu..%llu", what, (ull)len, (ull)min,
                    (ull)max);
    s->ptr = (const char *)(c->base + c->pos);
    s->len = len;
    c->pos += len;
    return GGUF_OK;
}

/* A key or tensor name: read_str, and no NUL byte inside (it could never be looked up by name). */
static int read_name(Cursor *c, GGUFStr *s, uint64_t max, const char *what) {
    int rc = read_str(c, s, 1, max, what);
    if (rc) return rc;
    const char *nul = memchr(s->ptr, 0, s->len);
    if (nul)
        return fail(c, "%s \"%s\": contains a NUL byte at position %llu", what, shown(*s).s,
                    (ull)(nul - s->ptr));
    return GGUF_OK;
}

size_t gguf_type_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_type_name(uint32_t type) {
    static const char *const names[GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool",  "string", "array", "uint64", "int64", "float64",
    };
    return type < GGUF_TYPE_COUNT ? names[type] : "?";
}

/* Skip over one value of type `type` (already read), checking it. `key` names it in messages. */
static int skip_value(Cursor *c, uint32_t type, GGUFStr key, int depth, GGUFArray *arr_out) {
    if (type >= GGUF_TYPE_COUNT)
        return fail(c, "metadata \"%s\": unknown value type %u: expected 0..%d", shown(key).s, type,
                    GGUF_TYPE_COUNT - 1);
    size_t sz = gguf_type_size(type);
    if (sz) {
        int rc = need(c, sz, "a metadata value");
        if (rc) return rc;
        if (type == GGUF_TYPE_BOOL && c->base[c->pos] > 1)
            return fail(c, "metadata \"%s\": bool value %u: expected 0 or 1", shown(key).s, c->base[c->pos]);
        c->pos += sz;
        return GGUF_OK;
    }
    if (type == GGUF_TYPE_STRING) {
        GGUFStr s;
        return read_str(c, &s, 0, 0, "a metadata string");
    }
    /* array */
    if (depth >= GGUF_MAX_DEPTH)
        return fail(c, "metadata \"%s\": arrays nested deeper than %d", shown(key).s, GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t n;
    int rc = read_u32(c, &et, "an array element type");
    if (rc) return rc;
    rc = read_u64(c, &n, "an array element count");
    if (rc) return rc;
    if (et >= GGUF_TYPE_COUNT)
        return fail(c, "metadata \"%s\": unknown array element type %u: expected 0..%d", shown(key).s, et,
                    GGUF_TYPE_COUNT - 1);
    /* Smallest encoding of one element: fixed size, 8 (string length) or 12 (nested array header). */
    uint64_t min_elem = gguf_type_size(et) ? gguf_type_size(et) : (et == GGUF_TYPE_STRING ? 8 : 12);
    if (n > left(c) / min_elem)
        return fail(c, "metadata \"%s\": array of %llu %s elements needs at least %llu bytes, found %llu",
                    shown(key).s, (ull)n, gguf_type_name(et),
                    n > UINT64_MAX / min_elem ? (ull)UINT64_MAX : (ull)(n * min_elem), (ull)left(c));
    uint64_t start = c->pos;
    if (gguf_type_size(et) && et != GGUF_TYPE_BOOL) {
        c->pos += n * min_elem; /* bounded above */
    } else {
        for (uint64_t i = 0; i < n; i++) {
            rc = skip_value(c, et, key, depth + 1, NULL);
            if (rc) return rc;
        }
    }
    if (arr_out) {
        arr_out->type = et;
        arr_out->n = n;
        arr_out->data = c->base + start;
        arr_out->nbytes = c->pos - start;
    }
    return GGUF_OK;
}

/* ---------------------------------------------------------------------------------------------------- */
/* name indexes: open addressing over indices, FNV-1a */

static uint64_t hash_str(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static bool str_eq(GGUFStr a, const char *p, uint64_t n) {
    return a.len == n && memcmp(a.ptr, p, n) == 0;
}

bool gguf_str_eq(GGUFStr s, const char *c) {
    return str_eq(s, c, strlen(c));
}

/* Slots hold index + 1 (0 = empty). Table size: a power of two >= 2n. */
static uint32_t *index_alloc(uint64_t n, uint64_t *mask) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    *mask = cap - 1;
    return calloc(cap, sizeof(uint32_t));
}

/* Returns the slot where `name` is or would go. */
static uint64_t index_slot(const uint32_t *idx, uint64_t mask, const char *p, uint64_t n, const void *items,
                           size_t stride) {
    uint64_t s = hash_str(p, n) & mask;
    while (idx[s]) {
        const GGUFStr *name = (const GGUFStr *)((const char *)items + (idx[s] - 1) * stride);
        if (str_eq(*name, p, n)) return s;
        s = (s + 1) & mask;
    }
    return s;
}

/* ---------------------------------------------------------------------------------------------------- */
/* parsing */

static int parse_kvs(Cursor *c, GGUFFile *f) {
    for (uint64_t i = 0; i < f->n_kv; i++) {
        GGUFKV *kv = &f->kv[i];
        int rc = read_name(c, &kv->key, GGUF_MAX_KEY, "metadata key");
        if (rc) return rc;
        rc = read_u32(c, &kv->type, "a metadata value type");
        if (rc) return rc;
        kv->data = c->base + c->pos;
        rc = skip_value(c, kv->type, kv->key, 0, &kv->arr);
        if (rc) return rc;
        if (kv->type != GGUF_TYPE_ARRAY) memset(&kv->arr, 0, sizeof kv->arr);
        uint64_t s = index_slot(f->kv_index, f->kv_index_mask, kv->key.ptr, kv->key.len, f->kv, sizeof *kv);
        if (f->kv_index[s]) return fail(c, "duplicate metadata key \"%s\"", shown(kv->key).s);
        f->kv_index[s] = (uint32_t)(i + 1);
    }
    return GGUF_OK;
}

static int parse_alignment(Cursor *c, GGUFFile *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GGUFKV *kv = gguf_find(f, "general.alignment");
    if (!kv) return GGUF_OK;
    if (kv->type != GGUF_TYPE_UINT32)
        return fail(c, "general.alignment: expected type uint32, found %s", gguf_type_name(kv->type));
    uint32_t a = load_u32(kv->data);
    if (a == 0 || (a & (a - 1)))
        return fail(c, "general.alignment: expected a power of two, found %u", a);
    f->alignment = a;
    return GGUF_OK;
}

static int parse_tensor_info(Cursor *c, GGUFFile *f, uint64_t i) {
    GGUFTensor *t = &f->tensors[i];
    int rc = read_name(c, &t->name, GGUF_MAX_NAME, "tensor name");
    if (rc) return rc;
    NameBuf shown_name = shown(t->name);
    const char *nm = shown_name.s;
    rc = read_u32(c, &t->n_dims, "tensor n_dims");
    if (rc) return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return fail(c, "tensor \"%s\": n_dims %u out of range: expected 1..%d", nm, t->n_dims, GGUF_MAX_DIMS);
    t->n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        rc = read_u64(c, &t->ne[d], "a tensor dimension");
        if (rc) return rc;
        if (t->ne[d] == 0) return fail(c, "tensor \"%s\": dimension %u is 0: expected >= 1", nm, d);
        if (t->ne[d] > (uint64_t)INT64_MAX / t->n_elems)
            return fail(c, "tensor \"%s\": element count overflows at dimension %u (ne = %llu): expected "
                           "at most %lld elements",
                        nm, d, (ull)t->ne[d], (long long)INT64_MAX);
        t->n_elems *= t->ne[d];
    }
    rc = read_u32(c, &t->type, "a tensor type");
    if (rc) return rc;
    const QuantTraits *q = quant_traits(t->type);
    if (!q) return fail(c, "tensor \"%s\": unknown tensor type %u", nm, t->type);
    if (t->ne[0] % q->block_elems)
        return fail(c, "tensor \"%s\": row length %llu is not a multiple of the %s block size %u", nm,
                    (ull)t->ne[0], q->name, q->block_elems);
    uint64_t blocks = t->n_elems / q->block_elems;
    if (blocks > UINT64_MAX / q->block_bytes)
        return fail(c, "tensor \"%s\": byte size overflows (%llu blocks of %u bytes)", nm, (ull)blocks,
                    q->block_bytes);
    t->nbytes = blocks * q->block_bytes;
    rc = read_u64(c, &t->offset, "a tensor data offset");
    if (rc) return rc;
    uint64_t s = index_slot(f->tensor_index, f->tensor_index_mask, t->name.ptr, t->name.len, f->tensors,
                            sizeof *t);
    if (f->tensor_index[s]) return fail(c, "duplicate tensor name \"%s\"", nm);
    f->tensor_index[s] = (uint32_t)(i + 1);
    return GGUF_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const GGUFTensor *x = *(const GGUFTensor *const *)a, *y = *(const GGUFTensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Tensor data: aligned, inside the data section, no two overlapping. */
static int check_extents(Cursor *c, GGUFFile *f) {
    uint64_t data_size = f->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        GGUFTensor *t = &f->tensors[i];
        if (t->offset % f->alignment)
            return fail(c, "tensor \"%s\": data offset %llu is not a multiple of the alignment %u",
                        shown(t->name).s, (ull)t->offset, f->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return fail(c, "tensor \"%s\": data at offset %llu of %llu bytes runs past the end of the data "
                           "section (%llu bytes)",
                        shown(t->name).s, (ull)t->offset, (ull)t->nbytes, (ull)data_size);
        t->data = f->base + f->data_offset + t->offset;
    }
    if (f->n_tensors < 2) return GGUF_OK;
    const GGUFTensor **order = malloc(f->n_tensors * sizeof *order);
    if (!order) return GGUF_ENOMEM;
    for (uint64_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, cmp_offset);
    int rc = GGUF_OK;
    for (uint64_t i = 1; i < f->n_tensors && !rc; i++) {
        const GGUFTensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset)
            rc = fail(c, "tensors \"%s\" and \"%s\" overlap: [%llu, %llu) and [%llu, %llu)", shown(a->name).s,
                      shown(b->name).s, (ull)a->offset, (ull)(a->offset + a->nbytes), (ull)b->offset,
                      (ull)(b->offset + b->nbytes));
    }
    free(order);
    return rc;
}

static int parse(Cursor *c, GGUFFile *f) {
    int rc = need(c, 4, "magic");
    if (rc) return rc;
    if (memcmp(c->base, "GGUF", 4) != 0)
        return fail(c, "bad magic: expected \"GGUF\" (47 47 55 46), found %02x %02x %02x %02x", c->base[0],
                    c->base[1], c->base[2], c->base[3]);
    c->pos = 4;
    if ((rc = read_u32(c, &f->version, "version"))) return rc;
    if (f->version != 2 && f->version != 3)
        return fail(c, "unsupported GGUF version: expected 2 or 3, found %u", f->version);
    if ((rc = read_u64(c, &f->n_tensors, "tensor count"))) return rc;
    if ((rc = read_u64(c, &f->n_kv, "metadata count"))) return rc;

    /* Bound the counts by the bytes that could hold them before allocating: a metadata entry takes at
     * least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes, a tensor info 8 + 1 + 4 + 8 + 4 + 8. */
    if (f->n_kv > left(c) / 14)
        return fail(c, "metadata count %llu too large: the remaining %llu bytes hold at most %llu entries",
                    (ull)f->n_kv, (ull)left(c), (ull)(left(c) / 14));
    if (f->n_tensors > left(c) / 33)
        return fail(c, "tensor count %llu too large: the remaining %llu bytes hold at most %llu tensor infos",
                    (ull)f->n_tensors, (ull)left(c), (ull)(left(c) / 33));
    if (f->n_kv >= UINT32_MAX || f->n_tensors >= UINT32_MAX) return fail(c, "too many entries");

    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    f->kv_index = index_alloc(f->n_kv, &f->kv_index_mask);
    f->tensor_index = index_alloc(f->n_tensors, &f->tensor_index_mask);
    if (!f->kv || !f->tensors || !f->kv_index || !f->tensor_index) return GGUF_ENOMEM;

    if ((rc = parse_kvs(c, f))) return rc;
    if ((rc = parse_alignment(c, f))) return rc;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = parse_tensor_info(c, f, i))) return rc;

    uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
    f->data_offset = c->pos + pad;
    if (f->data_offset > f->size) {
        if (f->n_tensors > 0)
            return fail(c, "truncated file: the data section starts at offset %llu, past the end of the file "
                           "(%llu bytes)",
                        (ull)f->data_offset, (ull)f->size);
        f->data_offset = f->size; /* no tensors: no data section needed */
    }
    return check_extents(c, f);
}

int gguf_parse(GGUFFile **out, const void *data, uint64_t size, char *err, size_t errlen) {
    *out = NULL;
    if (err && errlen) err[0] = 0;
    GGUFFile *f = calloc(1, sizeof *f);
    if (!f) return GGUF_ENOMEM;
    f->base = data;
    f->size = size;
    Cursor c = {.base = data, .size = size, .pos = 0, .err = err, .errlen = errlen};
    int rc = parse(&c, f);
    if (rc == GGUF_ENOMEM && err && errlen) snprintf(err, errlen, "out of memory while parsing the file");
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return GGUF_OK;
}

int gguf_open(GGUFFile **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return GGUF_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return GGUF_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: expected a regular file", path);
        close(fd);
        return GGUF_EIO;
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            snprintf(err, errlen, "cannot map %s: %s", path, strerror(errno));
            close(fd);
            return GGUF_EIO;
        }
    }
    close(fd);
    static const uint8_t empty[1];
    int rc = gguf_parse(out, map ? map : empty, size, err, errlen);
    if (rc) {
        if (map) munmap(map, size);
        return rc;
    }
    (*out)->map = map;
    (*out)->map_size = size;
    return GGUF_OK;
}

void gguf_close(GGUFFile *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    free(f->kv);
    free(f->tensors);
    free(f->kv_index);
    free(f->tensor_index);
    free(f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* lookups */

const GGUFKV *gguf_find(const GGUFFile *f, const char *key) {
    uint64_t n = strlen(key);
    uint64_t s = index_slot(f->kv_index, f->kv_index_mask, key, n, f->kv, sizeof *f->kv);
    return f->kv_index[s] ? &f->kv[f->kv_index[s] - 1] : NULL;
}

const GGUFTensor *gguf_find_tensor(const GGUFFile *f, const char *name) {
    uint64_t n = strlen(name);
    uint64_t s = index_slot(f->tensor_index, f->tensor_index_mask, name, n, f->tensors, sizeof *f->tensors);
    return f->tensor_index[s] ? &f->tensors[f->tensor_index[s] - 1] : NULL;
}

/* Decode one fixed-size integer value; false if `type` is not an integer type (bool counts as one). */
static bool decode_int(uint32_t type, const uint8_t *p, int64_t *out, bool *too_big) {
    *too_big = false;
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL: *out = p[0]; return true;
    case GGUF_TYPE_INT8: *out = (int8_t)p[0]; return true;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case GGUF_TYPE_UINT32: *out = load_u32(p); return true;
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case GGUF_TYPE_UINT64: {
        uint64_t v = load_u64(p);
        *too_big = v > (uint64_t)INT64_MAX;
        *out = (int64_t)(v & (uint64_t)INT64_MAX);
        return true;
    }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    default: return false;
    }
}

static bool decode_float(uint32_t type, const uint8_t *p, double *out) {
    if (type == GGUF_TYPE_FLOAT32) { float v; memcpy(&v, p, 4); *out = v; return true; }
    if (type == GGUF_TYPE_FLOAT64) { memcpy(out, p, 8); return true; }
    int64_t i;
    bool big;
    if (type != GGUF_TYPE_BOOL && decode_int(type, p, &i, &big)) { *out = big ? 0x1p63 : (double)i; return true; }
    return false;
}

int gguf_get_int(const GGUFFile *f, const char *key, int64_t *out) {
    const GGUFKV *kv = gguf_find(f, key);
    if (!kv) return GGUF_ENOKEY;
    bool big;
    if (kv->type == GGUF_TYPE_BOOL || !decode_int(kv->type, kv->data, out, &big)) return GGUF_ETYPE;
    return big ? GGUF_ERANGE : GGUF_OK;
}

int gguf_get_u32(const GGUFFile *f, const char *key, uint32_t *out) {
    int64_t v;
    int rc = gguf_get_int(f, key, &v);
    if (rc) return rc;
    if (v < 0 || v > UINT32_MAX) return GGUF_ERANGE;
    *out = (uint32_t)v;
    return GGUF_OK;
}

int gguf_get_float(const GGUFFile *f, const char *key, double *out) {
    const GGUFKV *kv = gguf_find(f, key);
    if (!kv) return GGUF_ENOKEY;
    return decode_float(kv->type, kv->data, out) ? GGUF_OK : GGUF_ETYPE;
}

int gguf_get_bool(const GGUFFile *f, const char *key, bool *out) {
    const GGUFKV *kv = gguf_find(f, key);
    if (!kv) return GGUF_ENOKEY;
    if (kv->type != GGUF_TYPE_BOOL) return GGUF_ETYPE;
    *out = kv->data[0] != 0;
    return GGUF_OK;
}

int gguf_get_str(const GGUFFile *f, const char *key, GGUFStr *out) {
    const GGUFKV *kv = gguf_find(f, key);
    if (!kv) return GGUF_ENOKEY;
    if (kv->type != GGUF_TYPE_STRING) return GGUF_ETYPE;
    out->len = load_u64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return GGUF_OK;
}

int gguf_get_arr(const GGUFFile *f, const char *key, GGUFArray *out) {
    const GGUFKV *kv = gguf_find(f, key);
    if (!kv) return GGUF_ENOKEY;
    if (kv->type != GGUF_TYPE_ARRAY) return GGUF_ETYPE;
    *out = kv->arr;
    return GGUF_OK;
}

int gguf_arr_int(const GGUFArray *a, uint64_t i, int64_t *out) {
    size_t sz = gguf_type_size(a->type);
    if (!sz || a->type == GGUF_TYPE_FLOAT32 || a->type == GGUF_TYPE_FLOAT64) return GGUF_ETYPE;
    if (i >= a->n) return GGUF_ERANGE;
    bool big;
    decode_int(a->type, a->data + i * sz, out, &big);
    return big ? GGUF_ERANGE : GGUF_OK;
}

int gguf_arr_float(const GGUFArray *a, uint64_t i, double *out) {
    size_t sz = gguf_type_size(a->type);
    if (!sz || a->type == GGUF_TYPE_BOOL) return GGUF_ETYPE;
    if (i >= a->n) return GGUF_ERANGE;
    decode_float(a->type, a->data + i * sz, out);
    return GGUF_OK;
}

GGUFStrIter gguf_str_iter(const GGUFArray *a) {
    GGUFStrIter it = {a->data, a->type == GGUF_TYPE_STRING ? a->n : 0};
    return it;
}

bool gguf_str_next(GGUFStrIter *it, GGUFStr *out) {
    if (it->left == 0) return false;
    /* The parser checked every element's length against the file, so the walk stays in bounds. */
    out->len = load_u64(it->p);
    out->ptr = (const char *)it->p + 8;
    it->p += 8 + out->len;
    it->left--;
    return true;
}

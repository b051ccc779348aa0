/*
 * gguf: parse a GGUF v2/v3 model file from memory (an mmap of the file), validating every field, and look
 * up its metadata and tensors. The bytes are untrusted: every failure returns an error code and one
 * message that says what was expected and what was found. Nothing here aborts or reads out of bounds.
 *
 * Not here: what the keys mean (model.c), tokenizer arrays (tokenizer.c), dequantization (quant, backends).
 *
 * The format (little-endian; ggml's gguf.h and docs/gguf.md are the reference):
 *  1. magic "GGUF" (4 bytes), version u32 (2 or 3), tensor count u64, metadata count u64.
 *  2. metadata, `count` times: key (string), value type u32, value.
 *     A string is a u64 byte length and that many bytes, no terminator.
 *     Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (one byte, 0 or 1), 8 string,
 *     9 array (element type u32, element count u64, elements; arrays may nest), 10 u64, 11 i64, 12 f64.
 *  3. tensor infos, `count` times: name (string), n_dims u32 (1..4), ne[n_dims] u64 (ne[0] is the
 *     fastest-varying dimension: a [896, 151936] weight is 151936 rows of 896 values), type u32 (ggml
 *     type id, see quant.h), data offset u64 (relative to the data section).
 *  4. padding to `general.alignment` (u32 metadata, a power of two, default 32).
 *  5. the data section: each tensor at its offset, which is a multiple of the alignment; tensors do not
 *     overlap and lie inside the file.
 *
 * Checks beyond the layout: keys of 1..65535 bytes and tensor names of 1..256 bytes, unique, without NUL
 * bytes; known tensor types only; every dimension >= 1 and the element count representable; row length
 * (ne[0]) a multiple of the type's block; arrays nested at most GGUF_MAX_DEPTH deep.
 *
 * Strings (GGUFStr) point into the file's bytes and are not NUL-terminated; print them with "%.*s".
 */
#ifndef ORCD_GGUF_H
#define ORCD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_DEPTH 8         /* nested arrays */
#define GGUF_MAX_KEY 65535       /* bytes in a metadata key */
#define GGUF_MAX_NAME 256        /* bytes in a tensor name */
#define GGUF_DEFAULT_ALIGNMENT 32

/* Return codes: 0 is success. */
enum {
    GGUF_OK = 0,
    GGUF_EIO = -1,       /* cannot open, stat or map the file */
    GGUF_EFORMAT = -2,   /* the bytes are not a valid GGUF file */
    GGUF_ENOMEM = -3,    /* allocation failed */
    GGUF_ENOKEY = -4,    /* lookup: no such key */
    GGUF_ETYPE = -5,     /* lookup: the value has another type */
    GGUF_ERANGE = -6,    /* lookup: the value does not fit the requested type */
};

typedef enum GGUFValueType {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT,
} GGUFValueType;

typedef struct GGUFStr {
    const char *ptr; /* into the file's bytes; not NUL-terminated */
    uint64_t len;
} GGUFStr;

typedef struct GGUFArray {
    uint32_t type;       /* element type (GGUFValueType) */
    uint64_t n;          /* element count */
    const uint8_t *data; /* first element, in the file's bytes (may be unaligned) */
    uint64_t nbytes;     /* bytes spanned by all elements */
} GGUFArray;

typedef struct GGUFKV {
    GGUFStr key;
    uint32_t type;       /* GGUFValueType */
    const uint8_t *data; /* the value's bytes (for strings: the length prefix; for arrays: elements) */
    GGUFArray arr;       /* when type == GGUF_TYPE_ARRAY */
} GGUFKV;

typedef struct GGUFTensor {
    GGUFStr name;
    uint32_t type;               /* QuantType id, known to quant_traits() */
    uint32_t n_dims;             /* 1..4 */
    uint64_t ne[GGUF_MAX_DIMS];  /* ne[0] fastest; dimensions past n_dims are 1 */
    uint64_t n_elems;            /* product of ne */
    uint64_t offset;             /* from the start of the data section */
    uint64_t nbytes;             /* n_elems / block_elems * block_bytes */
    const void *data;            /* the tensor's bytes in the file */
} GGUFTensor;

typedef struct GGUFFile {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    GGUFKV *kv;              /* (n_kv,) in file order */
    GGUFTensor *tensors;     /* (n_tensors,) in file order */
    uint32_t alignment;
    uint64_t data_offset;    /* file offset of the data section */
    const uint8_t *base;     /* the whole file */
    uint64_t size;           /* its size in bytes */
    /* private: name -> index hash tables and the mapping */
    uint32_t *kv_index, *tensor_index;
    uint64_t kv_index_mask, tensor_index_mask;
    void *map;
    size_t map_size;
} GGUFFile;

/* Parse `size` bytes at `data`. On success *out owns a GGUFFile that points into `data`, which the
 * caller keeps alive until gguf_close(). On failure returns GGUF_EFORMAT or GGUF_ENOMEM, writes a message
 * (NUL-terminated, truncated to errlen) to err, leaves *out NULL and leaks nothing. */
int gguf_parse(GGUFFile **out, const void *data, uint64_t size, char *err, size_t errlen);

/* mmap the file at `path` read-only and parse it. The mapping belongs to the GGUFFile. Errors as
 * gguf_parse, plus GGUF_EIO with the system's reason. */
int gguf_open(GGUFFile **out, const char *path, char *err, size_t errlen);

/* Free the file and its mapping (if gguf_open made one). NULL is fine. */
void gguf_close(GGUFFile *f);

/* ---- lookups (pointers stay valid until gguf_close) ---- */

const GGUFKV *gguf_find(const GGUFFile *f, const char *key);          /* NULL if absent */
const GGUFTensor *gguf_find_tensor(const GGUFFile *f, const char *name); /* NULL if absent */

/* Typed getters: GGUF_OK, GGUF_ENOKEY, GGUF_ETYPE (e.g. a string where a number was asked) or GGUF_ERANGE.
 * gguf_get_int accepts every integer type; gguf_get_float accepts f32, f64 and integers. */
int gguf_get_int(const GGUFFile *f, const char *key, int64_t *out);
int gguf_get_u32(const GGUFFile *f, const char *key, uint32_t *out);
int gguf_get_float(const GGUFFile *f, const char *key, double *out);
int gguf_get_bool(const GGUFFile *f, const char *key, bool *out);
int gguf_get_str(const GGUFFile *f, const char *key, GGUFStr *out);
int gguf_get_arr(const GGUFFile *f, const char *key, GGUFArray *out);

/* Element i of an array of integers (any integer type or bool), or of numbers (f32/f64 too). */
int gguf_arr_int(const GGUFArray *a, uint64_t i, int64_t *out);
int gguf_arr_float(const GGUFArray *a, uint64_t i, double *out);

/* Walk an array of strings in order: `it` starts as gguf_str_iter(a); each gguf_str_next() gives the
 * next element and returns false at the end (or if the array holds no strings). */
typedef struct GGUFStrIter {
    const uint8_t *p;
    uint64_t left;
} GGUFStrIter;
GGUFStrIter gguf_str_iter(const GGUFArray *a);
bool gguf_str_next(GGUFStrIter *it, GGUFStr *out);

/* "uint32", "string", "array", ...; "?" for an unknown id. */
const char *gguf_type_name(uint32_t type);

/* Size in bytes of one value of a fixed-size type, 0 for string, array and unknown ids. */
size_t gguf_type_size(uint32_t type);

/* true if s equals the NUL-terminated c. */
bool gguf_str_eq(GGUFStr s, const char *c);

#endif

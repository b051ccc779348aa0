/*
 * tokenizer: byte-level BPE (GPT-2 style) built from a GGUF file's tokenizer.* metadata alone: encode text
 * to token ids, decode ids to bytes, and decode a stream of ids to valid UTF-8 piece by piece.
 *
 * Not here: chat templates (chat.h), sampling, SentencePiece or WordPiece vocabularies (a GGUF whose
 * tokenizer.ggml.model is not "gpt2" is a load error).
 *
 * What is read (GGUF keys under tokenizer.ggml.):
 *  1. model: must be "gpt2" (byte-level BPE).
 *  2. pre: the pre-tokenizer, one of "qwen2", "llama-bpe" (also "llama3", "llama-v3"), "smollm", "gpt2".
 *     Anything else, or no key, is a load error: a wrong split gives wrong ids without any other symptom.
 *  3. tokens: the vocabulary as stored (bytes of each token mapped through GPT-2's byte-to-unicode table:
 *     "Ġ" is the space byte); token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
 *     6 byte (all normal when absent); merges: "A B" strings, rank = index.
 *  4. bos/eos/eot/eom/unknown/padding_token_id, add_bos_token.
 *
 * Encoding (what Hugging Face `tokenizers` does with the model's tokenizer.json, id for id):
 *  a. With TOKENIZE_PARSE_SPECIAL, the text is first cut at every occurrence of a control or user-defined
 *     token's text (leftmost, longest first), each becoming that single token. Without it, the whole text
 *     is plain text: "<|im_end|>" typed by a user is 7 ordinary tokens, never the special one.
 *  b. Each plain segment is normalized when the pre-tokenizer's tokenizer.json does so (qwen2: NFC, with
 *     the Unicode 9.0 tables Hugging Face uses), unless TOKENIZE_NO_NORMALIZE.
 *  c. The pre-tokenizer splits it into pieces with the regex of its type (Unicode 16.0 classes),
 *     implemented by hand (no regex engine): see docs/tokenizer.md for the patterns.
 *  d. Each piece's bytes start as byte tokens and are merged by rank (lowest first, leftmost on ties).
 *  Bytes that are not valid UTF-8 are kept: each invalid byte is one "other" character for the split and
 *  becomes its byte token, so tokenizer_decode(tokenizer_encode(x)) == x for any bytes x when the text
 *  is not normalized (and == NFC(x) for qwen2 otherwise).
 *
 * Thread safety: a loaded Tokenizer is immutable; every function here may be called from any number of
 * threads at once on one Tokenizer (each TokenDecoder belongs to one thread at a time). Encoding uses no
 * shared cache.
 */
#ifndef ORCD_TOKENIZER_H
#define ORCD_TOKENIZER_H

#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

/* Return codes: 0 is success. */
enum {
    TOKENIZER_OK = 0,
    TOKENIZER_EFORMAT = -1, /* load: the metadata is missing, malformed or of an unsupported kind */
    TOKENIZER_ENOMEM = -2,  /* allocation failed */
    TOKENIZER_EINVAL = -3,  /* decode: a token id outside [0, n_vocab) */
};

typedef enum TokenType {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,      /* <|im_start|>, <|endoftext|>: decoded only with TOKENIZER_DECODE_SPECIAL */
    TOKEN_USER_DEFINED = 4, /* <tool_call>: matched like control tokens, decoded as its text */
    TOKEN_UNUSED = 5,       /* [PAD151665]: never produced by encode, decodes to nothing */
    TOKEN_BYTE = 6,
} TokenType;

/* encode flags:
 *  TOKENIZE_PARSE_SPECIAL  match control and user-defined token texts as single tokens
 *  TOKENIZE_ADD_BOS        prepend BOS if the model asks for it (add_bos_token) and the text does not
 *                          already start with it (as a special token, with TOKENIZE_PARSE_SPECIAL)
 *  TOKENIZE_NO_NORMALIZE   skip the model's normalization: ids follow the bytes exactly */
#define TOKENIZE_PARSE_SPECIAL 1u
#define TOKENIZE_ADD_BOS       2u
#define TOKENIZE_NO_NORMALIZE  4u

/* decode flag: write control (and unknown) tokens' text; by default they decode to "" */
#define TOKENIZER_DECODE_SPECIAL 1u

/* Build the tokenizer from f's metadata. It copies what it needs: f may be closed afterwards. On failure
 * returns TOKENIZER_EFORMAT or TOKENIZER_ENOMEM, writes a message (what was expected, what was found) to
 * err, leaves *out NULL and leaks nothing. */
int tokenizer_load(Tokenizer **out, const GGUFFile *f, char *err, size_t errlen);

/* NULL is fine. */
void tokenizer_free(Tokenizer *t);

/* Encode `len` bytes of text (any bytes; NUL has no special meaning). Writes at most `cap` ids to out
 * (out may be NULL when cap is 0) and returns how many the text needs, which is never more than
 * 3 * len + 1: when the result exceeds cap, call again with a larger buffer. Returns TOKENIZER_ENOMEM
 * (negative) if scratch memory could not be had. */
int64_t tokenizer_encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *out,
                         size_t cap);

/* Concatenate the bytes of n tokens (no replacement of invalid UTF-8: the exact bytes). Writes at most
 * cap bytes to out (no terminator) and returns the total needed, or TOKENIZER_EINVAL if an id is out of
 * range. */
int64_t tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *out,
                         size_t cap);

int32_t tokenizer_n_vocab(const Tokenizer *t);
int32_t tokenizer_bos(const Tokenizer *t);          /* -1 when the model has none */
int32_t tokenizer_eos(const Tokenizer *t);          /* -1 when the model has none */
bool tokenizer_add_bos(const Tokenizer *t);         /* the model's add_bos_token (false when absent) */
const char *tokenizer_pre_name(const Tokenizer *t); /* "qwen2", "llama-bpe", ... */

/* End of generation: eos, eot, eom and every control/user-defined token whose text ends a turn or a
 * document (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end_of_text|>, <|eom_id|>, <|end|>, <end_of_turn>,
 * <|fim_pad|>, <|repo_name|>, <|file_sep|>, ...). false for ids out of range. */
bool tokenizer_is_eog(const Tokenizer *t, int32_t id);

/* TOKEN_UNUSED for ids out of range. */
TokenType tokenizer_token_type(const Tokenizer *t, int32_t id);

/* The bytes a token stands for (for control tokens: their text), not NUL-terminated; NULL and *len 0 for
 * ids out of range. Valid until tokenizer_free. */
const char *tokenizer_piece(const Tokenizer *t, int32_t id, size_t *len);

/* The token's text as stored in the vocabulary ("Ġworld"); like tokenizer_piece otherwise. */
const char *tokenizer_token_text(const Tokenizer *t, int32_t id, size_t *len);

/* The id of the token whose stored text is exactly these bytes, or -1. */
int32_t tokenizer_find(const Tokenizer *t, const char *text, size_t len);

/* Longest token in bytes (tokenizer_piece). */
size_t tokenizer_max_piece(const Tokenizer *t);

/* The pre-tokenizer's pieces of a text, for tests and debugging: steps a to c of encoding, calling fn once
 * per piece in order (special is the token id of a matched special token, else -1). Returns 0 or
 * TOKENIZER_ENOMEM. */
typedef void (*TokenizerPieceFn)(void *ctx, const char *piece, size_t len, int32_t special);
int tokenizer_split(const Tokenizer *t, const char *text, size_t len, unsigned flags, TokenizerPieceFn fn,
                    void *ctx);

/* ---- streaming decode ----
 * Feed the ids of a generation one at a time; each call returns the text that is complete so far, always
 * valid UTF-8. A character split across tokens is held back until its last byte arrives. Bytes that can
 * never become a valid character are replaced by U+FFFD, one per maximal invalid subpart, as soon as that
 * is known (the next byte cannot continue the sequence, or token_decoder_flush at the end): the same
 * output as Python's bytes.decode("utf-8", "replace") of all the tokens' bytes. Out-of-range ids decode to
 * nothing. */
typedef struct TokenDecoder {
    const Tokenizer *tok;
    unsigned flags;  /* TOKENIZER_DECODE_* */
    uint8_t pend[4]; /* an incomplete UTF-8 sequence held back */
    uint32_t n_pend; /* bytes in pend */
    uint32_t need;   /* bytes the sequence in pend will have */
    char *buf;       /* (cap,) output of the last call */
    size_t cap;
} TokenDecoder;

/* Returns 0 or TOKENIZER_ENOMEM. */
int token_decoder_init(TokenDecoder *d, const Tokenizer *t, unsigned flags);

/* The text completed by token id: *len bytes at the returned pointer, valid until the next call on d. */
const char *token_decoder_push(TokenDecoder *d, int32_t id, size_t *len);

/* The end of the stream: U+FFFD for a sequence still held back (or ""); d is then ready for a new stream. */
const char *token_decoder_flush(TokenDecoder *d, size_t *len);

void token_decoder_free(TokenDecoder *d);

#endif

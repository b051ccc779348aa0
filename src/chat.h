/*
 * chat: chat templates, recognised by family from the model's `tokenizer.chat_template` and rendered by
 * C code per family. A template is never executed as code: from its text only the family (by the
 * markers it prints), its literal default system prompt and whether it prints bos_token and trims
 * contents are read.
 *
 * Families and what they render (the same bytes as the model's own Jinja template for conversations of
 * system, user and assistant messages, with add_generation_prompt):
 *  - ChatML (Qwen2.5, SmolLM2): [<|im_start|>system\nDEFAULT<|im_end|>\n when the first message is not a
 *    system message and the template has a default] then <|im_start|>ROLE\nCONTENT<|im_end|>\n per
 *    message, then <|im_start|>assistant\n.
 *  - Llama 3: [BOS] then <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> per message
 *    (CONTENT trimmed of whitespace as Python's str.strip does, when the template pipes it through trim),
 *    then <|start_header_id|>assistant<|end_header_id|>\n\n.
 *  - No template or an unrecognised one: ChatML without a default system prompt (with one log_warn at
 *    load).
 *
 * Not here: tool calls, images, tokenization (the engine encodes the rendered text with
 * TOKENIZE_PARSE_SPECIAL; the rendered text already holds BOS when the template prints it).
 */
#ifndef ORCD_CHAT_H
#define ORCD_CHAT_H

#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum ChatFamily {
    CHAT_NONE,    /* the file has no template */
    CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|>\n: Qwen2.5, SmolLM2 */
    CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    CHAT_UNKNOWN, /* a template we do not recognise */
} ChatFamily;

/* The family of a template given as `len` bytes (not NUL-terminated); NULL or empty gives CHAT_NONE. */
ChatFamily chat_family(const char *tmpl, size_t len);

/* "chatml", "llama3", "none", "unknown". */
const char *chat_family_name(ChatFamily f);

typedef enum ChatRole { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT } ChatRole;

/* "system", "user", "assistant"; chat_role_parse: 0 on success, -1 for another name. */
const char *chat_role_name(ChatRole r);
int chat_role_parse(const char *name, ChatRole *out);

typedef struct ChatMessage {
    ChatRole role;
    const char *content; /* len bytes, not NUL-terminated; any bytes */
    size_t len;
} ChatMessage;

typedef struct ChatTemplate {
    ChatFamily family;    /* as recognised (CHAT_NONE and CHAT_UNKNOWN render as ChatML) */
    char *default_system; /* owned, NUL-terminated; NULL when the template has no default system prompt */
    char *bos;            /* owned, NUL-terminated; "" unless the template prints bos_token */
    bool trim;            /* message contents are stripped of leading and trailing whitespace */
} ChatTemplate;

/* Recognise a template (`len` bytes, may be NULL) and copy what rendering needs. bos is the text of the
 * model's BOS token (may be NULL). Returns 0, or -1 when out of memory. Logs one warning when the template
 * is missing or not recognised. */
int chat_template_init(ChatTemplate *t, const char *tmpl, size_t len, const char *bos);

/* The same from a GGUF file: tokenizer.chat_template and the text of tokenizer.ggml.bos_token_id.
 * Returns 0, or -1 with a message in err. */
int chat_template_load(ChatTemplate *t, const GGUFFile *f, char *err, size_t errlen);

void chat_template_free(ChatTemplate *t);

/* Render n messages; with add_generation_prompt the assistant's turn is opened at the end. *out is a
 * NUL-terminated malloc'd string of *out_len bytes (contents may hold NUL bytes) that the caller frees.
 * Returns 0, or -1 when out of memory. */
int chat_render(const ChatTemplate *t, const ChatMessage *msgs, size_t n, bool add_generation_prompt,
                char **out, size_t *out_len);

#endif

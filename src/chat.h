/*
 * chat: chat templates, recognised by family from the model's `tokenizer.chat_template` (never executed
 * as code).
 *
 * Not here yet: rendering messages (the tokenizer issue adds it).
 */
#ifndef ORCD_CHAT_H
#define ORCD_CHAT_H

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

#endif

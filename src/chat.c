/*
 * chat: template families, recognised by the markers each family's template must print.
 */
#define _GNU_SOURCE /* memmem */
#include "chat.h"

#include <string.h>

static int has(const char *t, size_t n, const char *needle) {
    return memmem(t, n, needle, strlen(needle)) != NULL;
}

ChatFamily chat_family(const char *tmpl, size_t len) {
    if (!tmpl || len == 0) return CHAT_NONE;
    if (has(tmpl, len, "<|start_header_id|>") && has(tmpl, len, "<|eot_id|>")) return CHAT_LLAMA3;
    if (has(tmpl, len, "<|im_start|>") && has(tmpl, len, "<|im_end|>")) return CHAT_CHATML;
    return CHAT_UNKNOWN;
}

const char *chat_family_name(ChatFamily f) {
    switch (f) {
    case CHAT_NONE: return "none";
    case CHAT_CHATML: return "chatml";
    case CHAT_LLAMA3: return "llama3";
    default: return "unknown";
    }
}

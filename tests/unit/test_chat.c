/*
 * Unit tests of chat templates: family recognition, the default system prompt read from the template's
 * string literals (escapes decoded as Jinja does), rendering per family, trim, BOS, fallback. The
 * comparison with Jinja on the real models' templates is tests/python/test_chat.py.
 */
#include "test.h"

#include "../../src/chat.h"

#include <stdlib.h>
#include <string.h>

/* The rendered prompt of msgs as a NUL-terminated string the caller frees. */
static char *render(const char *tmpl, const char *bos, const ChatMessage *msgs, size_t n, bool gen) {
    ChatTemplate t;
    if (chat_template_init(&t, tmpl, tmpl ? strlen(tmpl) : 0, bos)) return NULL;
    char *out = NULL;
    size_t len;
    if (chat_render(&t, msgs, n, gen, &out, &len)) out = NULL;
    chat_template_free(&t);
    return out;
}

#define M(role, text) ((ChatMessage){role, text, sizeof(text) - 1})

/* A ChatML template with a default system prompt, written like Qwen2.5's (escaped newlines). */
static const char QWEN_LIKE[] =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are \\'Q\\', a \\x41\\u00e9 \"helper\".<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n";

/* Like SmolLM2's: real newlines inside the literals, double-quoted strings elsewhere. */
static const char SMOL_LIKE[] =
    "{# '<|im_start|>system\nNot this one<|im_end|>' #}"
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}"
    "{{\"<|im_start|>\" + message['role'] + \"\n\" + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";

static const char LLAMA3[] = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set "
                             "content = '<|start_header_id|>' + "
                             "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                             "'<|eot_id|>' %}{% if loop.index0 == 0 "
                             "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor "
                             "%}{% if add_generation_prompt %}{{ "
                             "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

TEST(chat_family_recognised) {
    ASSERT_EQ_INT(chat_family(QWEN_LIKE, strlen(QWEN_LIKE)), CHAT_CHATML);
    ASSERT_EQ_INT(chat_family(LLAMA3, strlen(LLAMA3)), CHAT_LLAMA3);
    ASSERT_EQ_INT(chat_family(NULL, 0), CHAT_NONE);
    ASSERT_EQ_INT(chat_family("{{ messages }}", 14), CHAT_UNKNOWN);
    ASSERT_EQ_STR(chat_family_name(CHAT_LLAMA3), "llama3");
}

TEST(chat_default_system_from_literals) {
    ChatTemplate t;
    ASSERT_EQ_INT(chat_template_init(&t, QWEN_LIKE, strlen(QWEN_LIKE), NULL), 0);
    ASSERT_EQ_STR(t.default_system, "You are 'Q', a A\xC3\xA9 \"helper\".");
    chat_template_free(&t);
    ASSERT_EQ_INT(chat_template_init(&t, SMOL_LIKE, strlen(SMOL_LIKE), NULL), 0);
    ASSERT_EQ_STR(t.default_system, "You are SmolLM"); /* not the one in the comment */
    chat_template_free(&t);
    ASSERT_EQ_INT(chat_template_init(&t, LLAMA3, strlen(LLAMA3), "<|begin_of_text|>"), 0);
    ASSERT(t.default_system == NULL);
    ASSERT(t.trim);
    ASSERT_EQ_STR(t.bos, "<|begin_of_text|>");
    chat_template_free(&t);
}

TEST(chat_render_chatml) {
    ChatMessage m[] = {M(CHAT_USER, "Hi"), M(CHAT_ASSISTANT, "Hello!"), M(CHAT_USER, " two\nlines ")};
    char *s = render(SMOL_LIKE, NULL, m, 3, true);
    ASSERT_EQ_STR(s, "<|im_start|>system\nYou are SmolLM<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                     "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n two\nlines <|im_end|>\n"
                     "<|im_start|>assistant\n");
    free(s);
    ChatMessage sys[] = {M(CHAT_SYSTEM, "Be brief."), M(CHAT_USER, "Hi")};
    s = render(QWEN_LIKE, NULL, sys, 2, false);
    ASSERT_EQ_STR(s, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    free(s);
}

TEST(chat_render_llama3_trims_and_prints_bos) {
    ChatMessage m[] = {M(CHAT_SYSTEM, "  sys\n"), M(CHAT_USER, "\xE3\x80\x80hi there\x1f\xC2\x85"),
                       M(CHAT_ASSISTANT, "\t\n")};
    char *s = render(LLAMA3, "<|begin_of_text|>", m, 3, true);
    ASSERT_EQ_STR(s, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(s);
}

TEST(chat_unknown_template_falls_back_to_chatml) {
    ChatMessage m[] = {M(CHAT_USER, "x")};
    char *s = render("{{ messages | join }}", NULL, m, 1, true);
    ASSERT_EQ_STR(s, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    s = render(NULL, NULL, m, 1, false);
    ASSERT_EQ_STR(s, "<|im_start|>user\nx<|im_end|>\n");
    free(s);
}

TEST(chat_roles) {
    ChatRole r;
    ASSERT_EQ_INT(chat_role_parse("assistant", &r), 0);
    ASSERT_EQ_INT(r, CHAT_ASSISTANT);
    ASSERT_EQ_INT(chat_role_parse("tool", &r), -1);
    ASSERT_EQ_STR(chat_role_name(CHAT_SYSTEM), "system");
}

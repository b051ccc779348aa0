/*
 * `orcd template -m MODEL [--system TEXT] (--user TEXT | --assistant TEXT)... [--no-generation-prompt]`:
 * print the prompt the model's chat template family renders for these messages, in order, byte for byte
 * (no newline added), with the assistant's turn opened at the end. --family prints only the recognised
 * family and the default system prompt.
 *
 * Not here: tokenization (pipe into `orcd tokenize --special -`).
 */
#include "cli.h"

#include "../chat.h"
#include "../gguf.h"
#include "../log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: orcd template -m MODEL.gguf [--system TEXT] (--user TEXT | --assistant TEXT)... "
    "[--no-generation-prompt] | --family\n";

int cmd_template(int argc, char **argv) {
    const char *path = NULL;
    bool gen = true, family = false;
    ChatMessage *msgs = calloc((size_t)argc, sizeof *msgs);
    size_t n = 0;
    if (!msgs) {
        log_error("template: out of memory");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        ChatRole role;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(a, "--no-generation-prompt"))
            gen = false;
        else if (!strcmp(a, "--family"))
            family = true;
        else if (!strncmp(a, "--", 2) && !chat_role_parse(a + 2, &role) && i + 1 < argc) {
            msgs[n++] = (ChatMessage){role, argv[i + 1], strlen(argv[i + 1])};
            i++;
        } else {
            log_error("template: unexpected argument \"%s\"", a);
            fputs(USAGE, stderr);
            free(msgs);
            return 1;
        }
    }
    if (!path || (!family && n == 0)) {
        log_error("template: %s",
                  !path ? "no model: expected -m MODEL.gguf" : "no messages: expected --user TEXT");
        fputs(USAGE, stderr);
        free(msgs);
        return 1;
    }
    char err[512];
    GGUFFile *f;
    if (gguf_open(&f, path, err, sizeof err) != GGUF_OK) {
        log_error("template: %s: %s", path, err);
        free(msgs);
        return 1;
    }
    ChatTemplate t;
    int rc = chat_template_load(&t, f, err, sizeof err);
    gguf_close(f);
    if (rc) {
        log_error("template: %s: %s", path, err);
        free(msgs);
        return 1;
    }
    char *out = NULL;
    size_t len = 0;
    if (family) {
        printf("family: %s\ndefault system prompt: %s\n", chat_family_name(t.family),
               t.default_system ? t.default_system : "(none)");
    } else if (chat_render(&t, msgs, n, gen, &out, &len)) {
        log_error("template: out of memory");
        rc = 1;
    } else {
        fwrite(out, 1, len, stdout);
    }
    free(out);
    free(msgs);
    chat_template_free(&t);
    return rc ? 1 : 0;
}

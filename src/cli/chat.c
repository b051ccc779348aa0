/*
 * `orcd chat -m MODEL [--system TEXT] [-n N] [options]`: an interactive conversation. Each line typed is
 * the user's message; the whole conversation is rendered with the model's chat template and the reply
 * streams back. "/reset" starts over, "/exit" or end of input quits.
 *
 * Each turn prefills the whole conversation again (no KV reuse across turns yet): fine for chats of a few
 * thousand tokens on the CPU.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "common.h"

#include "../log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Turn {
    int done;
    EngineDone d;
    char *reply; /* the assistant's text, accumulated */
    size_t len, cap;
} Turn;

static int append(Turn *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->reply, cap);
        if (!p) return -1;
        t->reply = p, t->cap = cap;
    }
    memcpy(t->reply + t->len, s, n);
    t->len += n;
    t->reply[t->len] = 0;
    return 0;
}

static int on_token(void *user, const EngineToken *tok) {
    fwrite(tok->text, 1, tok->len, stdout);
    fflush(stdout);
    return append(user, tok->text, tok->len);
}

static void on_done(void *user, const EngineDone *d) {
    Turn *t = user;
    fwrite(d->tail, 1, d->tail_len, stdout);
    append(t, d->tail, d->tail_len);
    t->d = *d;
    t->done = 1;
}

typedef struct Conversation {
    ChatMessage *msgs;
    char **owned; /* the texts msgs point to */
    size_t n, cap;
} Conversation;

static int conv_add(Conversation *c, ChatRole role, char *text, size_t len) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        ChatMessage *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return -1;
        c->msgs = m;
        char **o = realloc(c->owned, cap * sizeof *o);
        if (!o) return -1;
        c->owned = o, c->cap = cap;
    }
    c->owned[c->n] = text;
    c->msgs[c->n++] = (ChatMessage){role, text, len};
    return 0;
}

static void conv_clear(Conversation *c, size_t keep) {
    while (c->n > keep) free(c->owned[--c->n]);
}

int cmd_chat(int argc, char **argv) {
    const char *path = NULL, *system = NULL;
    int max_tokens = 1024;
    bool seed_set = false;
    SamplerParams sp = sampler_defaults();
    sp.temperature = 0.7f, sp.top_k = 40, sp.top_p = 0.9f, sp.min_p = 0.05f;
    EngineOptions eo = engine_defaults();
    eo.n_slots = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = cli_parse_option(argc, argv, &i, &sp, &seed_set, &eo);
        if (rc < 0) return 1;
        if (rc > 0) continue;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) path = v, i++;
        else if (!strcmp(a, "--system") && v) system = v, i++;
        else if (!strcmp(a, "-n") && v && atoi(v) > 0) max_tokens = atoi(v), i++;
        else {
            fprintf(stderr, "usage: orcd chat -m MODEL [--system TEXT] [-n N] [options]\n%s", CLI_OPTIONS_HELP);
            return 1;
        }
    }
    char err[512];
    if (!path) return log_error("chat: expected -m MODEL"), 1;
    if (sampler_validate(&sp, err, sizeof err)) return log_error("chat: %s", err), 1;
    if (!seed_set) sp.seed = (uint64_t)time(NULL);
    CliModel cm;
    if (cli_open(&cm, path, &eo)) return 1;
    Conversation conv = {0};
    size_t base = 0;
    if (system) {
        char *s = strdup(system);
        if (!s || conv_add(&conv, CHAT_SYSTEM, s, strlen(s))) goto oom;
        base = 1;
    }
    fprintf(stderr, "orcd chat: type a message; /reset starts over, /exit quits\n");
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    for (;;) {
        fprintf(stderr, "> ");
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            conv_clear(&conv, base);
            continue;
        }
        if (n == 0) continue;
        char *msg = strdup(line);
        if (!msg || conv_add(&conv, CHAT_USER, msg, (size_t)n)) goto oom;
        char *prompt;
        size_t plen;
        int32_t *ids = NULL;
        if (chat_render(&cm.tmpl, conv.msgs, conv.n, true, &prompt, &plen)) goto oom;
        int64_t need = tokenizer_encode(cm.tok, prompt, plen, TOKENIZE_PARSE_SPECIAL | TOKENIZE_ADD_BOS, NULL, 0);
        if (need <= 0 || !(ids = malloc((size_t)need * sizeof *ids))) {
            free(prompt);
            goto oom;
        }
        tokenizer_encode(cm.tok, prompt, plen, TOKENIZE_PARSE_SPECIAL | TOKENIZE_ADD_BOS, ids, (size_t)need);
        free(prompt);
        Turn turn = {0};
        sp.seed++;
        EngineRequest req = {.prompt = ids, .n_prompt = (int)need, .max_tokens = max_tokens, .sampling = sp,
                             .on_token = on_token, .on_done = on_done, .user = &turn};
        uint64_t id;
        if (engine_submit(cm.engine, &req, &id, err, sizeof err) != ENGINE_OK) {
            log_error("chat: %s (/reset starts over)", err);
            free(ids);
            conv_clear(&conv, conv.n - 1);
            continue;
        }
        while (!turn.done) engine_step(cm.engine);
        free(ids);
        fputc('\n', stdout);
        if (turn.d.reason == STOP_ERROR) log_error("chat: %s", turn.d.error ? turn.d.error : "error");
        if (conv_add(&conv, CHAT_ASSISTANT, turn.reply ? turn.reply : strdup(""), turn.len)) goto oom;
    }
    goto done;
oom:
    log_error("chat: out of memory");
    rc = 1;
done:
    free(line);
    conv_clear(&conv, 0);
    free(conv.msgs);
    free(conv.owned);
    cli_close(&cm);
    return rc;
}

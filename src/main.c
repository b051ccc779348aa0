/*
 * orcd: an LLM inference worker. main only dispatches to the subcommands in cli/.
 */
#include "backend/backend.h"
#include "cli/cli.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#ifndef ORCD_VERSION
#define ORCD_VERSION "0.1.0"
#endif

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} Command;

static const Command COMMANDS[] = {
    {"serve", cmd_serve, "serve -m MODEL [--port 8080] [--parallel N] ...   the HTTP server (worker + OpenAI APIs)"},
    {"info", cmd_info, "info MODEL.gguf [--meta]   architecture, hyperparameters, tokenizer, tensors"},
    {"generate", cmd_generate, "generate -m MODEL -p PROMPT [--chat] [-n N] ...   stream a continuation"},
    {"chat", cmd_chat, "chat -m MODEL [--system TEXT]   an interactive conversation"},
    {"bench", cmd_bench, "bench -m MODEL [-p 512] [-n 128] [--streams 1,16]   prefill and decode tok/s"},
    {"logits", cmd_logits, "logits -m MODEL --ids IDS   one forward pass: top-k logits (for reference checks)"},
    {"tokenize", cmd_tokenize, "tokenize -m MODEL [--ids|--pieces|--split] [--special] [--batch0] TEXT|-"},
    {"template", cmd_template, "template -m MODEL [--system T] (--user T | --assistant T)...   chat prompt"},
};

static void usage(FILE *o) {
    fprintf(o, "orcd %s: an LLM inference worker\nusage: orcd COMMAND [ARGS]\n\ncommands:\n", ORCD_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) fprintf(o, "  %s\n", COMMANDS[i].help);
    fprintf(o, "  version                      the version and the backend this machine would use\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        DeviceInfo dev;
        char why[256];
        BackendKind k = backend_select(0, 0, &dev, why, sizeof why);
        printf("orcd %s\nbackend: %s", ORCD_VERSION, backend_name(k));
        if (k == BACKEND_CUDA)
            printf(" (%s, compute %d.%d, %.1f GiB, %d device(s))\n", dev.name, dev.cc_major, dev.cc_minor,
                   (double)dev.total_bytes / (1 << 30), dev.n_devices);
        else printf(" (%s)\n", why);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    log_error("unknown command \"%s\" (orcd --help lists them)", argv[1]);
    return 1;
}

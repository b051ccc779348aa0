/*
 * cli/common: what the generating subcommands share: opening a model with its tokenizer, chat template
 * and engine; the sampling and engine options; turning a prompt (raw or as a chat message) into ids.
 */
#ifndef ORCD_CLI_COMMON_H
#define ORCD_CLI_COMMON_H

#include "../chat.h"
#include "../engine.h"
#include "../model.h"
#include "../sampler.h"
#include "../tokenizer.h"

typedef struct CliModel {
    Model *model;
    Tokenizer *tok;
    ChatTemplate tmpl;
    Engine *engine;
} CliModel;

/* Open everything for model `path`; logs the reason and returns -1 on failure (nothing left open). */
int cli_open(CliModel *cm, const char *path, const EngineOptions *eo);
void cli_close(CliModel *cm);

/* If argv[*i] is a sampling or engine option, consume it (and its value) and return 1; 0 if it is not one;
 * -1 (logged) for a missing or malformed value. Options: --temp --top-k --top-p --min-p --repeat-penalty
 * --frequency-penalty --presence-penalty --repeat-last-n --seed --threads --ctx --parallel --batch --cpu
 * --exact. */
int cli_parse_option(int argc, char **argv, int *i, SamplerParams *sp, bool *seed_set, EngineOptions *eo);

/* The help lines for those options. */
extern const char CLI_OPTIONS_HELP[];

/* Encode a prompt: raw text (special tokens in it are plain text), or with chat a conversation of an
 * optional system message and `text` as the user's message, rendered by the model's template. *ids is
 * malloc'd. Returns 0, or -1 (logged). */
int cli_encode(CliModel *cm, const char *text, size_t len, bool chat, const char *system, int32_t **ids, int *n);

/* Parse token ids separated by spaces or commas into a malloc'd array; -1 (logged) if malformed. */
int cli_parse_ids(const char *s, int32_t **out, int *n);

/* Read all of a file ("-" for stdin) into a malloc'd buffer; NULL (logged) on failure. */
char *cli_read_file(const char *path, size_t *len);

#endif

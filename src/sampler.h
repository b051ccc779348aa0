/*
 * sampler: choose the next token from a row of logits. Greedy, temperature, top-k, top-p, min-p,
 * repetition / frequency / presence penalties, a seeded RNG; the chosen token's log-probability.
 *
 * Order (as vLLM and Hugging Face apply them): penalties on the raw logits, then temperature, then top-k,
 * top-p and min-p on the tempered distribution, then a draw. Temperature 0 is greedy (argmax after
 * penalties). All state is in the Sampler (one per sequence): the same parameters, seed and logits give the
 * same tokens.
 *
 * Not here: which logits (backend), stop conditions (engine).
 */
#ifndef ORCD_SAMPLER_H
#define ORCD_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct SamplerParams {
    float temperature;        /* 0..2; 0 = greedy */
    int top_k;                /* >= 0; 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1]; 0 = off: drop tokens below min_p * p(most likely) */
    float repetition_penalty; /* (0, 10]; 1 = off: logit / r if > 0, logit * r otherwise (CTRL, HF) */
    float frequency_penalty;  /* [-2, 2]; 0 = off: logit -= count * f (OpenAI) */
    float presence_penalty;   /* [-2, 2]; 0 = off: logit -= p once a token has appeared (OpenAI) */
    int penalty_last_n;       /* tokens of history the penalties look at; -1 = all */
    uint64_t seed;
} SamplerParams;

/* temperature 1, everything else off, penalty window 64, seed 0. */
SamplerParams sampler_defaults(void);

/* 0 if every field is in range; else -1 and "field: expected ..., found ..." in err. */
int sampler_validate(const SamplerParams *p, char *err, size_t errlen);

typedef struct Sampler Sampler;

/* A sampler over vocab_size logits (validated params). NULL if out of memory. */
Sampler *sampler_create(const SamplerParams *p, int vocab_size);
void sampler_free(Sampler *s);

/* Start over with new (validated) parameters and seed, keeping the buffers. */
void sampler_reset(Sampler *s, const SamplerParams *p);

/* Whether sampler_sample would choose the argmax of the raw logits (temperature 0, no penalties): then a
 * backend may make the choice where the logits are (Backend.forward_argmax). */
int sampler_is_greedy(const Sampler *s);

/* How many of a row's best logits sampler_sample_top needs to choose exactly as sampler_sample would: 1
 * for greedy, top_k for top-k sampling (top_k <= SAMPLER_MAX_CANDIDATES, below the vocabulary), 0 when it
 * needs the whole row (no top-k, or a penalty that can raise a logit: repetition below 1, negative
 * frequency or presence). */
#define SAMPLER_MAX_CANDIDATES 256
int sampler_candidates_needed(const Sampler *s);

/* sampler_sample given only a row's n_cand best logits (val, id: best first, equal values by smaller id):
 * the same token from the same random state, without the row. 0 and *token; or -1, nothing consumed, when
 * these candidates cannot decide it (fewer than needed, or a penalty moved one below where tokens beyond
 * them may rank): then call sampler_sample with the whole row. No log-probability (that needs the row). */
int sampler_sample_top(Sampler *s, const float *val, const int32_t *id, int n_cand, const int32_t *history,
                       int n_history, int32_t *token);

/* Choose a token from logits (vocab_size values, modified in place). history: the tokens so far (prompt
 * and generated) for the penalties. *logprob (if not NULL): log-probability of the chosen token under the
 * penalized distribution at temperature 1, before truncation (one more exp per vocabulary entry: pass
 * NULL unless it is wanted). Safe to call for different samplers from different threads at once. */
int sampler_sample(Sampler *s, float *logits, const int32_t *history, int n_history, float *logprob);

#endif

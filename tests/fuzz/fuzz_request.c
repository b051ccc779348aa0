/*
 * libFuzzer target for the server's request parser (src/server/request.c): random bytes as the JSON body
 * of each route (the first byte picks it). No socket, no model. Checks beyond "no crash, no hang, no leak"
 * (ASan/UBSan/LSan catch the rest):
 *  - a parse either succeeds with every field in its documented range, or fails with at least one error
 *    and leaves the request empty;
 *  - the joined error message is NUL-terminated within its buffer.
 */
#include "../../src/server/request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_OR_DIE(c)                                                                                      \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "fuzz_request: check failed at line %d: %s\n", __LINE__, #c);                    \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ok(const ParsedRequest *r, ApiKind api) {
    char err[256];
    CHECK_OR_DIE(r->api == api);
    if (api == API_CANCEL) {
        CHECK_OR_DIE(r->job_id && r->job_id[0] && strlen(r->job_id) <= REQ_MAX_JOB_ID);
        return;
    }
    CHECK_OR_DIE(sampler_validate(&r->sampling, err, sizeof err) == 0);
    CHECK_OR_DIE(r->max_tokens >= 0 && r->max_tokens <= REQ_MAX_TOKENS);
    CHECK_OR_DIE(r->n_stop >= 0 && r->n_stop <= REQ_MAX_STOP);
    for (int i = 0; i < r->n_stop; i++) {
        size_t n = strlen(r->stop[i]);
        CHECK_OR_DIE(n >= 1 && n <= REQ_MAX_STOP_LEN);
    }
    int sources = (r->prompt != NULL) + (r->prompt_ids != NULL) + (r->msgs != NULL);
    CHECK_OR_DIE(sources == 1);
    if (r->prompt) CHECK_OR_DIE(r->prompt_len >= 1);
    if (r->prompt_ids) {
        CHECK_OR_DIE(r->n_prompt_ids >= 1);
        for (int i = 0; i < r->n_prompt_ids; i++) CHECK_OR_DIE(r->prompt_ids[i] >= 0);
    }
    if (r->msgs) {
        CHECK_OR_DIE(r->n_msgs >= 1 && r->n_msgs <= REQ_MAX_MESSAGES);
        for (size_t i = 0; i < r->n_msgs; i++) CHECK_OR_DIE(r->msgs[i].content != NULL);
    }
    if (api == API_CHAT) CHECK_OR_DIE(r->msgs && !r->prompt);
    if (api == API_COMPLETIONS) CHECK_OR_DIE(!r->msgs);
    if (api == API_EXECUTE) CHECK_OR_DIE(!r->prompt_ids && !r->stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ApiKind api = (ApiKind)(data[0] % 4);
    SamplerParams defaults = sampler_defaults();
    ParsedRequest r;
    RequestErrors errs;
    int rc = request_parse(&r, api, (const char *)data + 1, size - 1, &defaults, &errs);
    if (rc == 0) {
        CHECK_OR_DIE(errs.n == 0);
        check_ok(&r, api);
        request_free(&r);
    } else {
        CHECK_OR_DIE(rc == -1 && errs.n >= 1 && errs.n <= REQ_MAX_ERRORS);
        CHECK_OR_DIE(!r.prompt && !r.msgs && !r.prompt_ids && !r.job_id && r.n_stop == 0);
        char msg[512];
        memset(msg, 'x', sizeof msg);
        request_errors_join(&errs, msg, sizeof msg);
        CHECK_OR_DIE(memchr(msg, 0, sizeof msg) != NULL);
    }
    return 0;
}

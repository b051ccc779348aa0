/*
 * Unit tests of the server's pure parts (built only with the server): request parsing and validation, the
 * error table, Prometheus rendering. The HTTP side is tested end to end in tests/python/test_server_*.py.
 */
#ifdef ORCD_SERVER
#include "../../src/server/errors.h"
#include "../../src/server/metrics.h"
#include "../../src/server/request.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static int parse(ParsedRequest *r, ApiKind api, const char *body, RequestErrors *errs) {
    SamplerParams d = sampler_defaults();
    return request_parse(r, api, body, strlen(body), &d, errs);
}

TEST(server_request_execute_fields) {
    ParsedRequest r;
    RequestErrors e;
    int rc = parse(&r, API_EXECUTE,
                   "{\"job_id\":\"j1\",\"prompt\":\"hi\\u0000there\",\"max_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,"
                   "\"top_k\":40,\"min_p\":0.1,\"repetition_penalty\":1.1,\"seed\":99,\"stop\":\"\\n\",\"extra\":[1],"
                   "\"ignore_eos\":true}",
                   &e);
    if (rc) FAIL("parse failed: %s", e.e[0].msg);
    ASSERT_EQ_STR(r.job_id, "j1");
    ASSERT_EQ_INT(r.prompt_len, 8); /* "hi", the NUL, "there" */
    ASSERT_EQ_INT(r.max_tokens, 7);
    ASSERT_NEAR(r.sampling.temperature, 0.5, 1e-6);
    ASSERT_EQ_INT(r.sampling.top_k, 40);
    ASSERT_EQ_INT(r.sampling.seed, 99);
    ASSERT(r.seed_set && r.ignore_eos);
    ASSERT_EQ_INT(r.n_stop, 1);
    ASSERT_EQ_STR(r.stop[0], "\n");
    request_free(&r);
}

TEST(server_request_chat_messages) {
    ParsedRequest r;
    RequestErrors e;
    int rc = parse(&r, API_CHAT,
                   "{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
                   "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,\"max_completion_tokens\":3}",
                   &e);
    if (rc) FAIL("parse failed: %s", e.e[0].msg);
    ASSERT_EQ_INT(r.n_msgs, 2);
    ASSERT_EQ_INT(r.msgs[0].role, CHAT_SYSTEM);
    ASSERT_EQ_INT(r.msgs[1].len, 2);
    ASSERT(!memcmp(r.msgs[1].content, "ab", 2));
    ASSERT(r.stream && r.include_usage);
    ASSERT_EQ_INT(r.max_tokens, 3);
    request_free(&r);
}

TEST(server_request_lists_every_error) {
    ParsedRequest r;
    RequestErrors e;
    ASSERT_EQ_INT(parse(&r, API_COMPLETIONS, "{\"prompt\":[1,2],\"n\":2,\"temperature\":3,\"top_p\":0,\"seed\":-1}", &e), -1);
    ASSERT_EQ_INT(e.n, 4);
    char msg[512];
    request_errors_join(&e, msg, sizeof msg);
    ASSERT_CONTAINS(msg, "n: expected 1");
    ASSERT_CONTAINS(msg, "temperature: expected a number in [0, 2], found 3");
    ASSERT_CONTAINS(msg, "top_p: expected a number in (0, 1], found 0");
    ASSERT_CONTAINS(msg, "seed: expected an integer in 0..");
    ASSERT(r.prompt_ids == NULL && r.prompt == NULL);
    ASSERT_EQ_INT(parse(&r, API_EXECUTE, "{\"prompt\":\"x\",\"stop\":[\"a\",\"\"]}", &e), -1);
    ASSERT_EQ_STR(e.e[0].field, "stop[1]");
    ASSERT_EQ_INT(parse(&r, API_EXECUTE, "[1]", &e), -1);
    ASSERT_CONTAINS(e.e[0].msg, "found an array");
}

TEST(server_error_table) {
    for (int c = 0; c < ERR_COUNT; c++) {
        const ErrInfo *ei = err_info((ErrCode)c);
        ASSERT(ei->code && ei->openai_code && ei->openai_type);
        ASSERT(ei->status >= 400 && ei->status <= 599);
        ASSERT((ei->status == 503) == (ei->retry_after > 0)); /* every 503 says when to come back */
        if (ei->status < 500 && c != ERR_CANCELLED) ASSERT(!ei->retriable);
    }
    ASSERT_EQ_INT(err_info(err_from_engine(ENGINE_ERR_BUSY))->status, 503);
    ASSERT_EQ_STR(err_info(err_from_engine(ENGINE_ERR_CONTEXT))->code, "CONTEXT_EXCEEDED");
    ASSERT_EQ_STR(err_info((ErrCode)999)->code, "INTERNAL");
}

TEST(server_metrics_histograms_are_cumulative) {
    Metrics m;
    metrics_init(&m);
    metrics_ttft(&m, 0.02);
    metrics_ttft(&m, 0.2);
    metrics_ttft(&m, 100);
    metrics_request(&m, API_CHAT, true, ERR_INTERNAL, 5, 7);
    EngineStats es = {.running = 1, .queued = 2, .kv_pages_used = 3, .kv_pages_total = 12};
    char *t = metrics_render(&m, &es, 4, true);
    ASSERT(t);
    ASSERT_CONTAINS(t, "orcd_time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n");
    ASSERT_CONTAINS(t, "orcd_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n");
    ASSERT_CONTAINS(t, "orcd_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n");
    ASSERT_CONTAINS(t, "orcd_time_to_first_token_seconds_count 3\n");
    ASSERT_CONTAINS(t, "orcd_requests_total{route=\"chat_completions\",outcome=\"OK\"} 1\n");
    ASSERT_CONTAINS(t, "orcd_generated_tokens_total 7\n");
    ASSERT_CONTAINS(t, "orcd_queue_depth 2\n");
    ASSERT_CONTAINS(t, "orcd_kv_usage_ratio 0.25\n");
    free(t);
    metrics_free(&m);
}
#endif

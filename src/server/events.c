/*
 * server/events: what goes on the wire for a job, built with jansson (never by pasting user text into
 * JSON): the worker API's server-sent events, OpenAI's stream chunks and completion bodies, and the error
 * bodies of both APIs.
 *
 * Worker stream:  event: started {job_id, model, started_at}
 *                 event: token {t, i}            one per token (t may be "" while a character is incomplete)
 *                 event: metrics {...}           once, before a successful end
 *                 event: end {tokens_out, decode_time_ms, stop_reason} | event: error {code, message, retriable}
 * Text held back until the end (a possible stop-string start, an incomplete character) comes as one more
 * token event repeating the last index.
 * OpenAI stream:  data: chunk per token ... data: final chunk with finish_reason [data: usage chunk]
 *                 data: [DONE]   (an error mid-stream: data: {"error": {...}} then data: [DONE])
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include "../log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------- */
/* helpers */

/* A JSON string of n bytes; text from the engine is valid UTF-8, anything else becomes U+FFFD. */
static json_t *jstr(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    if (!v) {
        log_warn("events: %zu bytes of text that are not UTF-8 replaced by U+FFFD", n);
        v = json_string("\xEF\xBF\xBD");
    }
    return v;
}

/* Append "event: NAME\ndata: JSON\n\n" (name NULL: just data) and drop obj. */
static void sse(Buf *b, const char *name, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_FLAGS) : NULL;
    json_decref(obj);
    if (!s) {
        b->oom = true;
        return;
    }
    if (name) {
        buf_str(b, "event: ");
        buf_str(b, name);
        buf_str(b, "\n");
    }
    buf_str(b, "data: ");
    buf_str(b, s);
    buf_str(b, "\n\n");
    free(s);
}

static const char *finish_reason(StopReason r) {
    return r == STOP_LENGTH ? "length" : "stop";
}

static json_t *usage(const Job *j) {
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", j->n_prompt, "completion_tokens", j->result.n_generated,
                     "total_tokens", j->n_prompt + j->result.n_generated);
}

static const char *model_name(const Job *j) {
    return j->srv->opt.model_name ? j->srv->opt.model_name : "orcd";
}

/* An OpenAI chunk: choices [{index 0, delta {content} | text, finish_reason}] (text NULL: none). */
static json_t *chunk(const Job *j, const char *text, size_t len, const char *finish, bool role) {
    bool chat = j->req.api == API_CHAT;
    json_t *choice = json_pack("{s:i, s:n, s:o}", "index", 0, "logprobs", "finish_reason",
                               finish ? json_string(finish) : json_null());
    if (chat) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (text) json_object_set_new(delta, "content", jstr(text, len));
        json_object_set_new(choice, "delta", delta);
    } else {
        json_object_set_new(choice, "text", text ? jstr(text, len) : json_string(""));
    }
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", j->id, "object",
                          chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)j->created,
                          "model", model_name(j), "choices", choice);
    if (c && j->req.include_usage) json_object_set_new(c, "usage", json_null());
    return c;
}

/* ---------------------------------------------------------------------------------------------------- */
/* errors */

char *error_body(bool openai, ErrCode code, const char *message, const RequestErrors *errs, json_t *extra) {
    const ErrInfo *ei = err_info(code);
    json_t *e = openai ? json_pack("{s:s, s:s, s:s}", "message", message, "type", ei->openai_type, "code",
                                   ei->openai_code)
                       : json_pack("{s:s, s:s, s:b}", "code", ei->code, "message", message, "retriable",
                                   ei->retriable);
    if (!e) {
        json_decref(extra);
        return NULL;
    }
    if (openai) {
        json_object_set_new(e, "param", errs && errs->n && errs->e[0].field[0] ? json_string(errs->e[0].field)
                                                                                 : json_null());
        json_object_set_new(e, "retriable", json_boolean(ei->retriable));
    }
    if (errs && errs->n) {
        json_t *list = json_array();
        for (int i = 0; i < errs->n; i++)
            json_array_append_new(list, json_pack("{s:s, s:s}", "field", errs->e[i].field, "message", errs->e[i].msg));
        json_object_set_new(e, "errors", list);
    }
    if (extra) json_object_update(e, extra), json_decref(extra);
    json_t *root = json_pack("{s:o}", "error", e);
    char *s = root ? json_dumps(root, JSON_FLAGS) : NULL;
    json_decref(root);
    return s;
}

/* The terminal error of a stream: a worker error event, or OpenAI's error data then [DONE]. */
static void stream_error(Job *j, ErrCode code, const char *message) {
    const ErrInfo *ei = err_info(code);
    if (j->req.api == API_EXECUTE) {
        sse(&j->out, "error", json_pack("{s:s, s:s, s:b}", "code", ei->code, "message", message, "retriable",
                                        ei->retriable));
        return;
    }
    char *body = error_body(true, code, message, NULL, NULL);
    if (!body) {
        j->out.oom = true;
        return;
    }
    buf_str(&j->out, "data: ");
    buf_str(&j->out, body);
    buf_str(&j->out, "\n\ndata: [DONE]\n\n");
    free(body);
}

static const char *error_message(Job *j, int e) {
    switch (e) {
    case ERR_TIMEOUT: return "the request ran past the server's time limit (--max-request-time)";
    case ERR_SHUTTING_DOWN: return "the server is shutting down; the request was stopped";
    case ERR_CANCELLED: return j->gone ? "the client went away" : "cancelled";
    default: return j->error[0] ? j->error : "the engine failed";
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* streams */

void events_begin(Job *j) {
    if (j->req.api == API_EXECUTE) {
        char when[40];
        struct tm tm;
        gmtime_r(&j->created, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        sse(&j->out, "started", json_pack("{s:s, s:s, s:s}", "job_id", j->job_id, "model", model_name(j),
                                          "started_at", when));
    } else if (j->req.api == API_CHAT) {
        sse(&j->out, NULL, chunk(j, "", 0, NULL, true));
    }
}

static void end_ok(Job *j, const TokEv *last) {
    const EngineDone *d = &j->result;
    if (j->req.api == API_EXECUTE) {
        if (j->tail_len)
            sse(&j->out, "token", json_pack("{s:o, s:i}", "t", jstr(j->tail, j->tail_len), "i",
                                            last ? last->index : 0));
        double tps = d->n_generated > 1 && d->decode_ms > 0 ? (d->n_generated - 1) / (d->decode_ms / 1e3) : 0;
        sse(&j->out, "metrics", json_pack("{s:i, s:i, s:f, s:f, s:f, s:f}", "prompt_tokens", j->n_prompt,
                                          "tokens_out", d->n_generated, "queue_ms", d->queue_ms, "prefill_ms",
                                          d->prefill_ms, "ttft_ms", d->ttft_ms, "decode_tok_s", tps));
        sse(&j->out, "end", json_pack("{s:i, s:f, s:s}", "tokens_out", d->n_generated, "decode_time_ms",
                                      d->decode_ms, "stop_reason", stop_reason_name(d->reason)));
        return;
    }
    sse(&j->out, NULL, chunk(j, j->tail_len ? j->tail : NULL, j->tail_len, finish_reason(d->reason), false));
    if (j->req.include_usage) {
        json_t *c = chunk(j, NULL, 0, NULL, false);
        if (c) {
            json_object_set_new(c, "choices", json_array());
            json_object_set_new(c, "usage", usage(j));
        }
        sse(&j->out, NULL, c);
    }
    buf_str(&j->out, "data: [DONE]\n\n");
}

void events_pump(Job *j) {
    /* copy what is new under the lock; format outside it */
    pthread_mutex_lock(&j->mu);
    int n = j->n_toks - j->n_sent;
    TokEv *toks = n > 0 ? malloc((size_t)n * sizeof *toks) : NULL;
    size_t base = n > 0 ? j->toks[j->n_sent].off : 0, tlen = j->text.len - base;
    char *text = n > 0 ? malloc(tlen + 1) : NULL;
    if (n > 0 && toks && text) {
        memcpy(toks, j->toks + j->n_sent, (size_t)n * sizeof *toks);
        memcpy(text, j->text.p + base, tlen);
    } else if (n > 0) {
        j->out.oom = true;
        n = 0;
    }
    bool done = j->done && n == j->n_toks - j->n_sent;
    TokEv last = j->n_toks ? j->toks[j->n_toks - 1] : (TokEv){0};
    pthread_mutex_unlock(&j->mu);
    j->n_sent += n;
    for (int k = 0; k < n; k++) {
        const char *t = text + (toks[k].off - base);
        if (j->req.api == API_EXECUTE)
            sse(&j->out, "token", json_pack("{s:o, s:i}", "t", jstr(t, toks[k].len), "i", toks[k].index));
        else if (toks[k].len)
            sse(&j->out, NULL, chunk(j, t, toks[k].len, NULL, false));
    }
    free(toks);
    free(text);
    if (!done || j->terminal_sent) return;
    j->terminal_sent = true;
    int e = job_error(j);
    if (e < 0) end_ok(j, j->n_toks ? &last : NULL);
    else stream_error(j, (ErrCode)e, error_message(j, e));
}

/* ---------------------------------------------------------------------------------------------------- */
/* a whole completion (stream: false) */

char *events_openai_body(Job *j) {
    Buf all = {0};
    buf_add(&all, j->text.p ? j->text.p : "", j->text.len);
    buf_add(&all, j->tail ? j->tail : "", j->tail_len);
    if (all.oom) return buf_free(&all), NULL;
    bool chat = j->req.api == API_CHAT;
    json_t *choice = json_pack("{s:i, s:n, s:s}", "index", 0, "logprobs", "finish_reason",
                               finish_reason(j->result.reason));
    if (choice && chat)
        json_object_set_new(choice, "message", json_pack("{s:s, s:o}", "role", "assistant", "content",
                                                         jstr(all.p, all.len)));
    else if (choice) json_object_set_new(choice, "text", jstr(all.p, all.len));
    buf_free(&all);
    json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", j->id, "object",
                             chat ? "chat.completion" : "text_completion", "created", (json_int_t)j->created,
                             "model", model_name(j), "choices", choice, "usage", usage(j));
    char *s = root ? json_dumps(root, JSON_FLAGS) : NULL;
    json_decref(root);
    return s;
}

const char *events_error_message(Job *j, int e) {
    return error_message(j, e);
}

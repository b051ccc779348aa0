/*
 * server/request: JSON bodies to ParsedRequest (see request.h). Every field is checked and every problem
 * kept (up to REQ_MAX_ERRORS), so that a client sees all of its mistakes at once.
 */
#define _POSIX_C_SOURCE 200809L
#include "request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------- */
/* errors */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void add_error(RequestErrors *errs, const char *field, const char *fmt, ...) {
    if (errs->n == REQ_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    FieldError *e = &errs->e[errs->n++];
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

void request_errors_join(const RequestErrors *errs, char *buf, size_t cap) {
    size_t n = 0;
    if (cap == 0) return;
    buf[0] = 0;
    for (int i = 0; i < errs->n && n + 1 < cap; i++) {
        const FieldError *e = &errs->e[i];
        int w = snprintf(buf + n, cap - n, "%s%s%s%s", i ? "; " : "", e->field, e->field[0] ? ": " : "", e->msg);
        if (w < 0) break;
        n += (size_t)w;
    }
    if (errs->dropped && n + 1 < cap) snprintf(buf + n, cap - n, "; and %d more", errs->dropped);
}

/* What a JSON value is, for "found ..." in messages. */
static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* typed fields: each returns 1 when present and valid, 0 when absent (or null), -1 when invalid (logged) */

static json_t *field(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_number(json_t *obj, const char *key, double lo, double hi, bool lo_open, double *out,
                      RequestErrors *errs) {
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_number(v)) {
        add_error(errs, key, "expected a number, found %s", kind(v));
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi || (lo_open && d == lo)) {
        add_error(errs, key, "expected a number in %s%g, %g], found %g", lo_open ? "(" : "[", lo, hi, d);
        return -1;
    }
    *out = d;
    return 1;
}

static int get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, RequestErrors *errs) {
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v)) {
        if (json_is_real(v)) add_error(errs, key, "expected an integer, found %g", json_real_value(v));
        else add_error(errs, key, "expected an integer, found %s", kind(v));
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        add_error(errs, key, "expected an integer in %lld..%lld, found %lld", lo, hi, x);
        return -1;
    }
    *out = x;
    return 1;
}

static int get_bool(json_t *obj, const char *key, bool *out, RequestErrors *errs) {
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        add_error(errs, key, "expected true or false, found %s", kind(v));
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

/* A string of at most max bytes; with no_nul, \u0000 is refused. *out is a malloc'd copy. */
static int get_string(json_t *obj, const char *key, size_t max, bool no_nul, bool non_empty, char **out,
                      size_t *len, RequestErrors *errs) {
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_string(v)) {
        add_error(errs, key, "expected a string, found %s", kind(v));
        return -1;
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (non_empty && n == 0) return add_error(errs, key, "expected a non-empty string"), -1;
    if (n > max) return add_error(errs, key, "expected at most %zu bytes, found %zu", max, n), -1;
    if (no_nul && memchr(s, 0, n)) return add_error(errs, key, "expected no \\u0000 in the string"), -1;
    if (!(*out = malloc(n + 1))) return add_error(errs, key, "out of memory"), -1;
    memcpy(*out, s, n);
    (*out)[n] = 0;
    if (len) *len = n;
    return 1;
}

/* ---------------------------------------------------------------------------------------------------- */
/* compound fields */

static void parse_stop(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    json_t *v = field(obj, "stop");
    if (!v) return;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > REQ_MAX_STOP) {
            add_error(errs, "stop", "expected at most %d strings, found %zu", REQ_MAX_STOP, n);
            return;
        }
        items = NULL;
    } else if (!json_is_string(v)) {
        add_error(errs, "stop", "expected a string or an array of strings, found %s", kind(v));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        char name[32];
        snprintf(name, sizeof name, items ? "stop" : "stop[%zu]", i);
        if (!json_is_string(s)) {
            add_error(errs, name, "expected a string, found %s", kind(s));
            continue;
        }
        size_t len = json_string_length(s);
        if (len == 0 || len > REQ_MAX_STOP_LEN) {
            add_error(errs, name, "expected 1..%d bytes, found %zu", REQ_MAX_STOP_LEN, len);
            continue;
        }
        if (memchr(json_string_value(s), 0, len)) {
            add_error(errs, name, "expected no \\u0000 in a stop string");
            continue;
        }
        if (!(r->stop[r->n_stop] = strdup(json_string_value(s)))) return add_error(errs, name, "out of memory");
        r->n_stop++;
    }
}

static void parse_sampling(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    SamplerParams *sp = &r->sampling;
    double d;
    long long x;
    if (get_number(obj, "temperature", 0, 2, false, &d, errs) > 0) sp->temperature = (float)d;
    if (get_number(obj, "top_p", 0, 1, true, &d, errs) > 0) sp->top_p = (float)d;
    if (get_number(obj, "min_p", 0, 1, false, &d, errs) > 0) sp->min_p = (float)d;
    if (get_number(obj, "repetition_penalty", 0, 10, true, &d, errs) > 0) sp->repetition_penalty = (float)d;
    if (get_number(obj, "frequency_penalty", -2, 2, false, &d, errs) > 0) sp->frequency_penalty = (float)d;
    if (get_number(obj, "presence_penalty", -2, 2, false, &d, errs) > 0) sp->presence_penalty = (float)d;
    if (get_int(obj, "top_k", 0, 1 << 30, &x, errs) > 0) sp->top_k = (int)x;
    if (get_int(obj, "seed", 0, INT64_MAX, &x, errs) > 0) sp->seed = (uint64_t)x, r->seed_set = true;
    get_bool(obj, "ignore_eos", &r->ignore_eos, errs);
    parse_stop(obj, r, errs);
}

static void parse_max_tokens(json_t *obj, const char *key, ParsedRequest *r, RequestErrors *errs) {
    long long x;
    if (get_int(obj, key, 1, REQ_MAX_TOKENS, &x, errs) > 0) r->max_tokens = (int)x;
}

/* n, best_of must be 1; echo, logprobs, suffix unsupported; stream and stream_options. */
static void parse_openai_common(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    char *model = NULL;
    if (get_string(obj, "model", 256, true, false, &model, NULL, errs) > 0) r->model = model;
    static const char *const ONE[] = {"n", "best_of"};
    for (int i = 0; i < 2; i++) {
        json_t *v = field(obj, ONE[i]);
        if (v && json_is_integer(v) && json_integer_value(v) != 1)
            add_error(errs, ONE[i], "expected 1 (one choice per request), found %lld", (long long)json_integer_value(v));
        else if (v && !json_is_integer(v))
            add_error(errs, ONE[i], "expected 1 (one choice per request), found %s", kind(v));
    }
    bool b = false;
    if (get_bool(obj, "echo", &b, errs) > 0 && b) add_error(errs, "echo", "expected false: echo is not supported");
    json_t *lp = field(obj, "logprobs");
    if (lp && !json_is_false(lp) && !(json_is_integer(lp) && json_integer_value(lp) == 0))
        add_error(errs, "logprobs", "expected null or false: logprobs are not supported, found %s", kind(lp));
    json_t *sfx = field(obj, "suffix");
    if (sfx && !(json_is_string(sfx) && json_string_length(sfx) == 0))
        add_error(errs, "suffix", "expected null: suffix is not supported, found %s", kind(sfx));
    get_bool(obj, "stream", &r->stream, errs);
    json_t *so = field(obj, "stream_options");
    if (so) {
        if (!json_is_object(so)) add_error(errs, "stream_options", "expected an object, found %s", kind(so));
        else {
            json_t *iu = field(so, "include_usage");
            if (iu && !json_is_boolean(iu))
                add_error(errs, "stream_options.include_usage", "expected true or false, found %s", kind(iu));
            else r->include_usage = iu && json_is_true(iu);
        }
    }
}

/* completions' prompt: a string, [string], [ids] or [[ids]]. */
static void parse_completion_prompt(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    json_t *p = field(obj, "prompt");
    if (!p) return add_error(errs, "prompt", "expected a string, found nothing");
    if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
        p = json_array_get(p, 0); /* [string] or [[ids]] */
    if (json_is_string(p)) {
        size_t n = json_string_length(p);
        if (n == 0) return add_error(errs, "prompt", "expected a non-empty string");
        if (!(r->prompt = malloc(n + 1))) return add_error(errs, "prompt", "out of memory");
        memcpy(r->prompt, json_string_value(p), n + 1);
        r->prompt_len = n;
        return;
    }
    if (!json_is_array(p) || json_array_size(p) == 0) {
        if (json_is_array(p)) return add_error(errs, "prompt", "expected a non-empty array");
        return add_error(errs, "prompt", "expected a string or an array of token ids, found %s", kind(p));
    }
    size_t n = json_array_size(p);
    if (json_is_string(json_array_get(p, 0)))
        return add_error(errs, "prompt", "expected one prompt, found %zu (batches are not supported)", n);
    if (!(r->prompt_ids = malloc(n * sizeof *r->prompt_ids))) return add_error(errs, "prompt", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_array_get(p, i);
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX) {
            char name[32];
            snprintf(name, sizeof name, "prompt[%zu]", i);
            return add_error(errs, name, "expected a token id (an integer >= 0), found %s", kind(id));
        }
        r->prompt_ids[i] = (int32_t)json_integer_value(id);
    }
    r->n_prompt_ids = (int)n;
}

/* One message's content: a string, or an array of {type: "text", text} parts joined. */
static int message_content(json_t *c, const char *name, char **out, size_t *len, RequestErrors *errs) {
    if (json_is_string(c)) {
        size_t n = json_string_length(c);
        if (!(*out = malloc(n + 1))) return add_error(errs, name, "out of memory"), -1;
        memcpy(*out, json_string_value(c), n + 1);
        *len = n;
        return 0;
    }
    if (!json_is_array(c)) return add_error(errs, name, "expected a string or an array of text parts, found %s", kind(c)), -1;
    size_t total = 0, i;
    json_t *part;
    json_array_foreach(c, i, part) {
        json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
        json_t *text = json_is_object(part) ? json_object_get(part, "text") : NULL;
        if (!type || !json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text)) {
            add_error(errs, name, "part %zu: expected {\"type\": \"text\", \"text\": string} (only text is supported)", i);
            return -1;
        }
        total += json_string_length(text);
    }
    if (!(*out = malloc(total + 1))) return add_error(errs, name, "out of memory"), -1;
    *len = 0;
    json_array_foreach(c, i, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(*out + *len, json_string_value(text), json_string_length(text));
        *len += json_string_length(text);
    }
    (*out)[*len] = 0;
    return 0;
}

static void parse_messages(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    json_t *m = field(obj, "messages");
    if (!m) return add_error(errs, "messages", "expected an array of messages, found nothing");
    if (!json_is_array(m)) return add_error(errs, "messages", "expected an array of messages, found %s", kind(m));
    size_t n = json_array_size(m);
    if (n == 0 || n > REQ_MAX_MESSAGES)
        return add_error(errs, "messages", "expected 1..%d messages, found %zu", REQ_MAX_MESSAGES, n);
    if (!(r->msgs = calloc(n, sizeof *r->msgs))) return add_error(errs, "messages", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i);
        char name[48];
        snprintf(name, sizeof name, "messages[%zu]", i);
        if (!json_is_object(msg)) {
            add_error(errs, name, "expected an object, found %s", kind(msg));
            continue;
        }
        json_t *role = json_object_get(msg, "role"), *content = field(msg, "content");
        ChatRole cr = CHAT_USER;
        char fname[64];
        snprintf(fname, sizeof fname, "%s.role", name);
        if (!json_is_string(role)) add_error(errs, fname, "expected a string, found %s", role ? kind(role) : "nothing");
        else if (!strcmp(json_string_value(role), "developer")) cr = CHAT_SYSTEM;
        else if (chat_role_parse(json_string_value(role), &cr))
            add_error(errs, fname, "expected system, developer, user or assistant, found \"%.40s\"", json_string_value(role));
        snprintf(fname, sizeof fname, "%s.content", name);
        if (!content) {
            add_error(errs, fname, "expected a string, found nothing");
            continue;
        }
        char *text = NULL;
        size_t len = 0;
        if (message_content(content, fname, &text, &len, errs)) continue;
        r->msgs[r->n_msgs++] = (ChatMessage){cr, text, len};
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* per route */

static void parse_execute(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    get_string(obj, "job_id", REQ_MAX_JOB_ID, true, true, &r->job_id, NULL, errs);
    char *prompt = NULL, *system = NULL;
    size_t plen = 0, slen = 0;
    int got = get_string(obj, "prompt", SIZE_MAX, false, true, &prompt, &plen, errs);
    if (got == 0) add_error(errs, "prompt", "expected a string, found nothing");
    parse_max_tokens(obj, "max_tokens", r, errs);
    parse_sampling(obj, r, errs);
    bool chat = false;
    get_bool(obj, "chat", &chat, errs);
    get_string(obj, "system", SIZE_MAX, false, false, &system, &slen, errs);
    if (system && !chat) add_error(errs, "system", "expected only with \"chat\": true");
    if (got <= 0) {
        free(system);
        return;
    }
    if (!chat) {
        r->prompt = prompt, r->prompt_len = plen;
        free(system);
        return;
    }
    if (!(r->msgs = calloc(2, sizeof *r->msgs))) {
        free(prompt), free(system);
        return add_error(errs, "prompt", "out of memory");
    }
    if (system) r->msgs[r->n_msgs++] = (ChatMessage){CHAT_SYSTEM, system, slen};
    r->msgs[r->n_msgs++] = (ChatMessage){CHAT_USER, prompt, plen};
}

static void parse_cancel(json_t *obj, ParsedRequest *r, RequestErrors *errs) {
    if (get_string(obj, "job_id", REQ_MAX_JOB_ID, true, true, &r->job_id, NULL, errs) == 0)
        add_error(errs, "job_id", "expected a string, found nothing");
}

int request_parse(ParsedRequest *r, ApiKind api, const char *body, size_t len, const SamplerParams *defaults,
                  RequestErrors *errs) {
    memset(r, 0, sizeof *r);
    memset(errs, 0, sizeof *errs);
    r->api = api;
    r->sampling = *defaults;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        add_error(errs, "", "expected a JSON object, found invalid JSON at byte %d (line %d, column %d): %s",
                  jerr.position, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        add_error(errs, "", "expected a JSON object, found %s", kind(root));
        json_decref(root);
        return -1;
    }
    switch (api) {
    case API_EXECUTE: parse_execute(root, r, errs); break;
    case API_CANCEL: parse_cancel(root, r, errs); break;
    case API_COMPLETIONS:
        parse_openai_common(root, r, errs);
        parse_completion_prompt(root, r, errs);
        parse_max_tokens(root, "max_tokens", r, errs);
        parse_sampling(root, r, errs);
        break;
    case API_CHAT:
        parse_openai_common(root, r, errs);
        parse_messages(root, r, errs);
        parse_max_tokens(root, "max_tokens", r, errs);
        parse_max_tokens(root, "max_completion_tokens", r, errs);
        parse_sampling(root, r, errs);
        break;
    }
    json_decref(root);
    char err[192];
    if (errs->n == 0 && api != API_CANCEL && sampler_validate(&r->sampling, err, sizeof err))
        add_error(errs, "", "%s", err);
    if (errs->n == 0 && errs->dropped == 0) return 0;
    request_free(r);
    return -1;
}

void request_free(ParsedRequest *r) {
    free(r->job_id);
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_msgs; i++) free((char *)r->msgs[i].content);
    free(r->msgs);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    ApiKind api = r->api;
    memset(r, 0, sizeof *r);
    r->api = api;
}

/*
 * server/job: one generation request between a connection thread and the engine thread (see
 * internal.h): the engine callbacks, waiting for news, noticing a client that went away, cancelling,
 * and counting the request once at the end.
 */
#define _GNU_SOURCE /* MSG_DONTWAIT, pthread_condattr_setclock */
#include "internal.h"

#include "../log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------------------------------------------- */
/* the buffer */

void buf_add(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void buf_str(Buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

void buf_free(Buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------------------------------- */
/* creation and the end */

Job *job_new(Server *s, ParsedRequest *req) {
    Job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->srv = s;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->refs = 1;
    j->req = *req;
    memset(req, 0, sizeof *req);
    req->api = j->req.api;
    j->created = time(NULL);
    j->t_received = now_ms();
    j->fd = -1;
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->next_job;
    pthread_mutex_unlock(&s->mu);
    switch (j->req.api) {
    case API_CHAT: snprintf(j->id, sizeof j->id, "chatcmpl-%llu", (unsigned long long)n); break;
    case API_COMPLETIONS: snprintf(j->id, sizeof j->id, "cmpl-%llu", (unsigned long long)n); break;
    default:
        if (j->req.job_id) j->job_id = j->req.job_id, j->req.job_id = NULL;
        else if ((j->job_id = malloc(32))) snprintf(j->job_id, 32, "job-%llu", (unsigned long long)n);
        if (!j->job_id) {
            request_free(&j->req);
            free(j);
            return NULL;
        }
        snprintf(j->id, sizeof j->id, "%.40s", j->job_id);
    }
    return j;
}

static void job_unref(Job *j) {
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    request_free(&j->req);
    free(j->job_id);
    buf_free(&j->text);
    buf_free(&j->out);
    free(j->toks);
    free(j->tail);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the engine's callbacks (engine thread: short, never blocking on I/O) */

static int on_token(void *user, const EngineToken *t) {
    Job *j = user;
    double now = now_ms();
    pthread_mutex_lock(&j->mu);
    size_t off = j->text.len;
    buf_add(&j->text, t->text, t->len);
    if (j->n_toks == j->cap_toks) {
        int cap = j->cap_toks ? 2 * j->cap_toks : 64;
        TokEv *p = realloc(j->toks, (size_t)cap * sizeof *p);
        if (p) j->toks = p, j->cap_toks = cap;
    }
    bool oom = j->text.oom || j->n_toks == j->cap_toks;
    if (!oom) j->toks[j->n_toks++] = (TokEv){t->id, t->index, off, t->len};
    bool first = j->n_toks == 1;
    double gap = now - j->t_last;
    j->t_last = now;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (first) metrics_ttft(&j->srv->metrics, (now - j->t_received) / 1e3);
    else metrics_inter_token(&j->srv->metrics, gap / 1e3);
    return oom; /* out of memory: stop this request (it ends as cancelled) */
}

static void on_done(void *user, const EngineDone *d) {
    Job *j = user;
    pthread_mutex_lock(&j->mu);
    j->result = *d;
    j->result.tail = NULL, j->result.error = NULL;
    if (d->tail_len && (j->tail = malloc(d->tail_len))) {
        memcpy(j->tail, d->tail, d->tail_len);
        j->tail_len = d->tail_len;
    }
    if (d->error) snprintf(j->error, sizeof j->error, "%s", d->error);
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j); /* the engine's reference */
}

/* ---------------------------------------------------------------------------------------------------- */
/* the connection's side */

int job_submit(Job *j, const int32_t *ids, int n_ids, char *err, size_t errlen) {
    Server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    for (Job *o = s->jobs; o && j->job_id; o = o->next)
        if (o->job_id && !strcmp(o->job_id, j->job_id)) {
            pthread_mutex_unlock(&s->mu);
            snprintf(err, errlen, "job_id: \"%s\" is already running (cancel it or use another id)", j->job_id);
            return JOB_CONFLICT;
        }
    j->next = s->jobs;
    s->jobs = j;
    s->n_open++;
    pthread_mutex_unlock(&s->mu);

    j->n_prompt = n_ids;
    EngineRequest r = {.prompt = ids, .n_prompt = n_ids, .max_tokens = j->max_tokens, .sampling = j->req.sampling,
                       .stop = (const char *const *)j->req.stop, .n_stop = j->req.n_stop,
                       .ignore_eog = j->req.ignore_eos, .on_token = on_token,
                       .on_done = on_done, .user = j};
    pthread_mutex_lock(&j->mu);
    j->refs++; /* the engine's, given back by on_done */
    pthread_mutex_unlock(&j->mu);
    uint64_t id = 0;
    int rc = engine_submit(s->engine, &r, &id, err, errlen);
    pthread_mutex_lock(&j->mu);
    if (rc != ENGINE_OK) j->refs--; /* the callbacks will not be called */
    else j->engine_id = id, j->submitted = true;
    bool cancel = rc == ENGINE_OK && j->cancel_requested;
    pthread_mutex_unlock(&j->mu);
    if (cancel) engine_cancel(s->engine, id);
    return rc;
}

/* The client closed its end (or the socket failed): a read that would not block returns 0 or an error. */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

JobEnd job_wait(Job *j, int timeout_ms) {
    Server *s = j->srv;
    pthread_mutex_lock(&j->mu);
    if (!j->done && (j->whole || j->n_toks == j->n_sent)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)timeout_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    bool done = j->done;
    uint64_t id = j->submitted ? j->engine_id : 0;
    pthread_mutex_unlock(&j->mu);
    if (done) return JOB_DONE;
    if (j->gone || client_gone(j->fd)) {
        if (!j->gone) log_info("request %s: the client went away; cancelling", j->id);
        j->gone = true;
        if (id) engine_cancel(s->engine, id);
        return JOB_GONE;
    }
    if (!j->timed_out && s->opt.max_request_s > 0 && now_ms() - j->t_received > s->opt.max_request_s * 1e3) {
        log_warn("request %s: ran past the %d s limit; cancelling", j->id, s->opt.max_request_s);
        j->timed_out = true;
        if (id) engine_cancel(s->engine, id);
    }
    return JOB_RUNNING;
}

int job_error(Job *j) {
    switch (j->result.reason) {
    case STOP_LENGTH:
    case STOP_EOG:
    case STOP_STRING: return -1;
    case STOP_CANCELLED: {
        if (j->timed_out) return ERR_TIMEOUT;
        pthread_mutex_lock(&j->srv->mu);
        bool expired = j->srv->drain_expired;
        pthread_mutex_unlock(&j->srv->mu);
        pthread_mutex_lock(&j->mu);
        bool asked = j->cancel_requested;
        pthread_mutex_unlock(&j->mu);
        return expired && !asked && !j->gone ? ERR_SHUTTING_DOWN : ERR_CANCELLED;
    }
    default: return err_from_engine(j->result.error_code);
    }
}

void job_count(Job *j) {
    if (j->counted) return;
    j->counted = true;
    pthread_mutex_lock(&j->mu);
    bool done = j->done;
    EngineDone d = j->result;
    if (!done) d.n_generated = j->n_toks; /* the client left first: what it was sent */
    pthread_mutex_unlock(&j->mu);
    int e = done ? job_error(j) : ERR_CANCELLED;
    metrics_request(&j->srv->metrics, j->req.api, e < 0, e < 0 ? ERR_INTERNAL : (ErrCode)e, j->n_prompt,
                    d.n_generated);
    double tps = d.n_generated > 1 && d.decode_ms > 0 ? (d.n_generated - 1) / (d.decode_ms / 1e3) : 0;
    log_info("request %s: %d prompt + %d generated tokens, first token %.0f ms, %.1f tok/s, %s%s%s", j->id,
             j->n_prompt, d.n_generated, d.ttft_ms, tps, e < 0 ? stop_reason_name(d.reason) : err_info((ErrCode)e)->code,
             j->error[0] ? ": " : "", j->error);
}

void job_release(Job *j) {
    Server *s = j->srv;
    pthread_mutex_lock(&j->mu);
    uint64_t id = j->submitted && !j->done ? j->engine_id : 0;
    pthread_mutex_unlock(&j->mu);
    if (id) engine_cancel(s->engine, id);
    pthread_mutex_lock(&s->mu);
    for (Job **p = &s->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            s->n_open--;
            pthread_cond_broadcast(&s->idle);
            break;
        }
    pthread_mutex_unlock(&s->mu);
    if (j->submitted) job_count(j);
    job_unref(j);
}

int job_cancel_by_id(Server *s, const char *job_id) {
    uint64_t id = 0;
    int found = 0;
    pthread_mutex_lock(&s->mu);
    for (Job *j = s->jobs; j; j = j->next)
        if (j->job_id && !strcmp(j->job_id, job_id)) {
            pthread_mutex_lock(&j->mu);
            j->cancel_requested = true;
            if (j->submitted && !j->done) id = j->engine_id;
            pthread_mutex_unlock(&j->mu);
            found = 1;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    if (id) engine_cancel(s->engine, id);
    return found;
}

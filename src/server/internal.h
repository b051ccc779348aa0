/*
 * server/internal: what the server's files share: the Server, a generation Job and its life cycle, the
 * output buffer, the JSON bodies. Not a public header: cli/serve.c sees server.h only.
 *
 * A Job is one generation request. Two parties hold it: the engine (from engine_submit until on_done) and
 * the connection (until the response is freed); the last one to let go frees it. The engine thread only
 * appends tokens under the job's mutex and signals; the connection thread waits, copies, formats, writes.
 */
#ifndef ORCD_SERVER_INTERNAL_H
#define ORCD_SERVER_INTERNAL_H

#include "errors.h"
#include "metrics.h"
#include "request.h"
#include "server.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* ---- a growable byte buffer ---- */
typedef struct Buf {
    char *p;
    size_t len, cap;
    bool oom;
} Buf;

void buf_add(Buf *b, const char *s, size_t n);
void buf_str(Buf *b, const char *s);
void buf_free(Buf *b);

/* ---- the server ---- */
struct Server {
    ServerOptions opt;
    struct MHD_Daemon *daemon;
    int port;
    Metrics metrics;
    /* set once by server_attach */
    Engine *engine;
    const Tokenizer *tok;
    const ChatTemplate *tmpl;
    ServerModelInfo info;
    int ready;                  /* 1 after server_attach (__atomic loads and stores) */
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t idle;        /* signalled when n_open drops */
    bool draining, drain_expired;
    struct Job *jobs;           /* open jobs (for /cancel by job_id) */
    int n_open;
    uint64_t next_job;
};

/* ---- a job ---- */
typedef struct TokEv {
    int32_t id;
    int index;
    size_t off, len; /* text in Job.text */
} TokEv;

typedef enum JobEnd { JOB_RUNNING, JOB_DONE, JOB_GONE } JobEnd;

typedef struct Job {
    Server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    ParsedRequest req;
    char id[48];              /* "chatcmpl-7", "cmpl-7" or the worker job_id's copy below */
    char *job_id;             /* worker API: the request's job_id or "job-N" (owned) */
    time_t created;           /* wall clock, seconds */
    double t_received;        /* monotonic ms */
    int n_prompt, max_tokens;
    int fd;                   /* the connection's socket, to notice a client that went away */
    /* engine side, under mu */
    uint64_t engine_id;
    bool submitted, cancel_requested, timed_out, gone;
    bool whole;               /* stream: false: wait for the end, not for each token */
    Buf text;                 /* every token's text, concatenated */
    TokEv *toks;
    int n_toks, cap_toks;
    double t_last;
    bool done;
    EngineDone result;        /* pointers cleared; tail and error copied below */
    char *tail;
    size_t tail_len;
    char error[256];
    /* connection side (one thread) */
    int n_sent;               /* tokens formatted */
    bool terminal_sent, counted;
    Buf out;                  /* formatted bytes not yet written */
    size_t out_off;
    double t_last_write;
    struct Job *next;         /* in srv->jobs */
} Job;

/* job.c */
Job *job_new(Server *s, ParsedRequest *req); /* takes req's contents; NULL if out of memory */
/* Submit ids to the engine. ENGINE_OK, or an ENGINE_ERR_* code with a message in err (the job is not in
 * the engine then). Registers the job for /cancel first when it has a job_id; ERR_CONFLICT (as -100) when
 * that id is already running. */
#define JOB_CONFLICT (-100)
int job_submit(Job *j, const int32_t *ids, int n_ids, char *err, size_t errlen);
/* Wait until the job has news for the connection (tokens, the end) or about timeout_ms passed; notices a
 * client gone (cancels, returns JOB_GONE) and the request's deadline (cancels). */
JobEnd job_wait(Job *j, int timeout_ms);
/* The connection lets go: cancels the job if still running, unregisters it, counts it. */
void job_release(Job *j);
/* /cancel: 1 if a job with that id was open. */
int job_cancel_by_id(Server *s, const char *job_id);
/* The error a finished job ended with, or -1 when it ended well (length, eog, stop string). */
int job_error(Job *j);
void job_count(Job *j); /* metrics and the log line, once */

/* events.c: formatting (the connection thread, job->mu not held for the slow part) */
void events_begin(Job *j);            /* the stream's first bytes (worker: started) into j->out */
void events_pump(Job *j);             /* new tokens (and the end, once) into j->out */
char *events_openai_body(Job *j);     /* non-streaming completion body (malloc'd JSON) */
const char *events_error_message(Job *j, int e); /* the message for a job that ended with error e */
/* Error bodies: the worker shape {"error": {code, message, retriable, errors?}} or OpenAI's
 * {"error": {message, type, param, code}}. extra (may be NULL) is merged into the error object. */
char *error_body(bool openai, ErrCode code, const char *message, const RequestErrors *errs, json_t *extra);

#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

double now_ms(void);

#endif

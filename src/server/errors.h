/*
 * server/errors: the one table of errors both HTTP APIs answer with. Each code has an HTTP status, a
 * `retriable` flag (a client may send the same request again later and expect it to work) and the type
 * OpenAI's error shape names. The worker API writes the code as is ("OVERLOADED"); the OpenAI API writes
 * it in lower case under error.code, with the type under error.type.
 *
 * Not here: the bodies (server/json.c writes both shapes), which error a request gets (the callers).
 */
#ifndef ORCD_SERVER_ERRORS_H
#define ORCD_SERVER_ERRORS_H

#include <stdbool.h>

typedef enum ErrCode {
    ERR_INVALID_REQUEST,  /* 400: malformed JSON, wrong types, values out of range (every field listed) */
    ERR_CONTEXT_EXCEEDED, /* 400: prompt (+ max_tokens) longer than the context; the token counts given */
    ERR_UNAUTHORIZED,     /* 401: --api-key set and the Bearer token missing or wrong */
    ERR_NOT_FOUND,        /* 404: no such route */
    ERR_METHOD_NOT_ALLOWED, /* 405 */
    ERR_CONFLICT,         /* 409: a job with this job_id is running */
    ERR_BODY_TOO_LARGE,   /* 413: body over --max-body */
    ERR_CANCELLED,        /* 499: /cancel, or the client went away */
    ERR_INTERNAL,         /* 500 */
    ERR_OVERLOADED,       /* 503 + Retry-After: the engine's queue is full */
    ERR_OUT_OF_MEMORY,    /* 503 + Retry-After: no KV pages left for this sequence */
    ERR_NOT_READY,        /* 503 + Retry-After: the model is loading or warming up */
    ERR_SHUTTING_DOWN,    /* 503 + Retry-After: SIGTERM received; another worker should take it */
    ERR_TIMEOUT,          /* 504: the request ran past --max-request-time */
    ERR_COUNT
} ErrCode;

typedef struct ErrInfo {
    const char *code;        /* "INVALID_REQUEST" */
    const char *openai_code; /* "invalid_request" */
    const char *openai_type; /* "invalid_request_error" */
    int status;              /* HTTP status */
    bool retriable;
    int retry_after;         /* seconds for a Retry-After header; 0 = none */
} ErrInfo;

/* The row for c (ERR_INTERNAL's row for anything out of range). */
const ErrInfo *err_info(ErrCode c);

/* The error an engine code (ENGINE_ERR_*) maps to. */
ErrCode err_from_engine(int engine_code);

#endif

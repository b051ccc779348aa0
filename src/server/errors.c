/*
 * server/errors: the error table (see errors.h).
 */
#include "errors.h"

#include "../engine.h"

static const ErrInfo TABLE[ERR_COUNT] = {
    [ERR_INVALID_REQUEST] = {"INVALID_REQUEST", "invalid_request", "invalid_request_error", 400, false, 0},
    [ERR_CONTEXT_EXCEEDED] = {"CONTEXT_EXCEEDED", "context_length_exceeded", "invalid_request_error", 400, false, 0},
    [ERR_UNAUTHORIZED] = {"UNAUTHORIZED", "invalid_api_key", "authentication_error", 401, false, 0},
    [ERR_NOT_FOUND] = {"NOT_FOUND", "not_found", "invalid_request_error", 404, false, 0},
    [ERR_METHOD_NOT_ALLOWED] = {"METHOD_NOT_ALLOWED", "method_not_allowed", "invalid_request_error", 405, false, 0},
    [ERR_CONFLICT] = {"CONFLICT", "conflict", "invalid_request_error", 409, false, 0},
    [ERR_BODY_TOO_LARGE] = {"BODY_TOO_LARGE", "body_too_large", "invalid_request_error", 413, false, 0},
    [ERR_CANCELLED] = {"CANCELLED", "cancelled", "cancelled_error", 499, false, 0},
    [ERR_INTERNAL] = {"INTERNAL", "internal_error", "server_error", 500, true, 0},
    [ERR_OVERLOADED] = {"OVERLOADED", "overloaded", "overloaded_error", 503, true, 1},
    [ERR_OUT_OF_MEMORY] = {"OUT_OF_MEMORY", "out_of_memory", "server_error", 503, true, 1},
    [ERR_NOT_READY] = {"NOT_READY", "not_ready", "overloaded_error", 503, true, 1},
    [ERR_SHUTTING_DOWN] = {"SHUTTING_DOWN", "shutting_down", "overloaded_error", 503, true, 1},
    [ERR_TIMEOUT] = {"TIMEOUT", "timeout", "timeout_error", 504, true, 0},
};

const ErrInfo *err_info(ErrCode c) {
    return (unsigned)c < ERR_COUNT ? &TABLE[c] : &TABLE[ERR_INTERNAL];
}

ErrCode err_from_engine(int engine_code) {
    switch (engine_code) {
    case ENGINE_ERR_INVALID: return ERR_INVALID_REQUEST;
    case ENGINE_ERR_CONTEXT: return ERR_CONTEXT_EXCEEDED;
    case ENGINE_ERR_BUSY: return ERR_OVERLOADED;
    case ENGINE_ERR_KV: return ERR_OUT_OF_MEMORY;
    case ENGINE_ERR_STOPPED: return ERR_SHUTTING_DOWN;
    default: return ERR_INTERNAL;
    }
}

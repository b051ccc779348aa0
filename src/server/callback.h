/*
 * server/callback: tell an orchestrator that this worker is ready: POST a JSON body to --callback-url
 * (plain http://host[:port][/path]) from a thread of its own. A failure (no answer, a refused connection,
 * a status other than 2xx) is logged and retried after 1, 2, 4 ... 30 s, until it succeeds or
 * callback_stop: it never stops the worker.
 *
 * Not here: https (logged as unsupported), redirects.
 */
#ifndef ORCD_SERVER_CALLBACK_H
#define ORCD_SERVER_CALLBACK_H

typedef struct Callback Callback;

/* Start posting `body` (copied) to url. NULL (logged) if url is not a plain http URL. */
Callback *callback_start(const char *url, const char *body);

/* Stop retrying and join the thread. NULL is fine. */
void callback_stop(Callback *cb);

#endif

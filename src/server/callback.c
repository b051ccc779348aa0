/*
 * server/callback: the ready callback, retried with backoff (see callback.h). A minimal HTTP/1.1 client:
 * one POST with Content-Length and Connection: close, then the status line of the answer.
 */
#define _GNU_SOURCE
#include "callback.h"

#include "../log.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct Callback {
    char host[256], port[8], path[1024];
    char *url, *body;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* http://host[:port][/path]: 0, or -1 with the reason. */
static int parse_url(Callback *cb, const char *url, char *err, size_t errlen) {
    if (strncmp(url, "http://", 7)) return snprintf(err, errlen, "expected http://host[:port]/path, found \"%.100s\"", url), -1;
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    const char *colon = memchr(h, ':', hl);
    size_t name_len = colon ? (size_t)(colon - h) : hl;
    if (name_len == 0 || name_len >= sizeof cb->host) return snprintf(err, errlen, "expected a host name in \"%.100s\"", url), -1;
    memcpy(cb->host, h, name_len);
    cb->host[name_len] = 0;
    size_t pl = colon ? hl - name_len - 1 : 0;
    if (colon && (pl == 0 || pl >= sizeof cb->port || strspn(colon + 1, "0123456789") < pl))
        return snprintf(err, errlen, "expected a port number in \"%.100s\"", url), -1;
    snprintf(cb->port, sizeof cb->port, "%.*s", colon ? (int)pl : 2, colon ? colon + 1 : "80");
    snprintf(cb->path, sizeof cb->path, "%s", slash ? slash : "/");
    return 0;
}

/* One attempt: 0 on a 2xx answer, else -1 with the reason. */
static int post_once(Callback *cb, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(cb->host, cb->port, &hints, &ai);
    if (gai) return snprintf(err, errlen, "%.100s: %.100s", cb->host, gai_strerror(gai)), -1;
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* also bounds connect() on Linux */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen)) {
            snprintf(err, errlen, "connect: %s", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) return -1;
    size_t blen = strlen(cb->body);
    char head[1536];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n", cb->path, cb->host, cb->port, blen);
    int rc = -1;
    if (send(fd, head, (size_t)hn, MSG_NOSIGNAL) != hn || send(fd, cb->body, blen, MSG_NOSIGNAL) != (ssize_t)blen) {
        snprintf(err, errlen, "send: %s", strerror(errno));
    } else {
        char resp[256];
        ssize_t got = 0, n;
        while (got < (ssize_t)sizeof resp - 1 && (n = recv(fd, resp + got, sizeof resp - 1 - (size_t)got, 0)) > 0) {
            got += n;
            if (memchr(resp, '\n', (size_t)got)) break;
        }
        resp[got > 0 ? got : 0] = 0;
        int status = 0;
        if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) snprintf(err, errlen, "no HTTP status line in the answer");
        else if (status < 200 || status > 299) snprintf(err, errlen, "answered HTTP %d", status);
        else rc = 0;
    }
    close(fd);
    return rc;
}

static void *run(void *arg) {
    Callback *cb = arg;
    int delay = 1;
    for (int attempt = 1;; attempt++) {
        char err[256] = "";
        if (post_once(cb, err, sizeof err) == 0) {
            log_info("callback %s: registered (attempt %d)", cb->url, attempt);
            return NULL;
        }
        log_warn("callback %s: attempt %d failed (%s); retrying in %d s", cb->url, attempt, err, delay);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += delay;
        pthread_mutex_lock(&cb->mu);
        while (!cb->stop && pthread_cond_timedwait(&cb->cv, &cb->mu, &ts) == 0) {
        }
        bool stop = cb->stop;
        pthread_mutex_unlock(&cb->mu);
        if (stop) return NULL;
        delay = delay * 2 > 30 ? 30 : delay * 2;
    }
}

Callback *callback_start(const char *url, const char *body) {
    Callback *cb = calloc(1, sizeof *cb);
    char err[256];
    if (!cb) return NULL;
    if (parse_url(cb, url, err, sizeof err)) {
        log_error("--callback-url: %s", err);
        free(cb);
        return NULL;
    }
    cb->url = strdup(url);
    cb->body = strdup(body);
    pthread_mutex_init(&cb->mu, NULL);
    pthread_cond_init(&cb->cv, NULL);
    if (!cb->url || !cb->body || pthread_create(&cb->thread, NULL, run, cb)) {
        log_error("--callback-url: cannot start the callback thread");
        pthread_mutex_destroy(&cb->mu);
        pthread_cond_destroy(&cb->cv);
        free(cb->url), free(cb->body), free(cb);
        return NULL;
    }
    return cb;
}

void callback_stop(Callback *cb) {
    if (!cb) return;
    pthread_mutex_lock(&cb->mu);
    cb->stop = true;
    pthread_cond_signal(&cb->cv);
    pthread_mutex_unlock(&cb->mu);
    pthread_join(cb->thread, NULL);
    pthread_mutex_destroy(&cb->mu);
    pthread_cond_destroy(&cb->cv);
    free(cb->url), free(cb->body), free(cb);
}

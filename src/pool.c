/*
 * pool: workers wait on a generation counter; pool_for publishes a job, bumps the generation, works on
 * the items itself, then waits until every worker has checked out. Items come from an atomic counter.
 */
#define _POSIX_C_SOURCE 200809L
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPIN_ITERS 20000

/* A spin-wait hint: lets an SMT sibling run, saves power. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct Pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_int generation; /* bumped once per job */
    atomic_int next;       /* next item to hand out */
    atomic_int busy;       /* workers still inside the current job */
    int n;                 /* items in the current job */
    void (*fn)(void *, int, int);
    void *ctx;
    atomic_int quit;
};

typedef struct Worker {
    Pool *p;
    int id;
} Worker;

static void run_items(Pool *p, int thread) {
    for (;;) {
        int i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n) break;
        p->fn(p->ctx, i, thread);
    }
}

static void *worker_main(void *arg) {
    Worker w = *(Worker *)arg;
    free(arg);
    Pool *p = w.p;
    int seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && !atomic_load(&p->quit)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        run_items(p, w.id);
        atomic_fetch_sub_explicit(&p->busy, 1, memory_order_release);
    }
}

Pool *pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    Pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (!p->threads) goto fail;
    for (int t = 1; t < n_threads; t++) {
        Worker *w = malloc(sizeof *w);
        if (!w) goto fail;
        *w = (Worker){p, t};
        if (pthread_create(&p->threads[t], NULL, worker_main, w) != 0) {
            free(w);
            p->n_threads = t; /* the ones started so far */
            goto fail;
        }
    }
    return p;
fail:
    pool_free(p);
    return NULL;
}

void pool_free(Pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n_threads; t++)
        if (p->threads) pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

int pool_threads(const Pool *p) {
    return p->n_threads;
}

void pool_for(Pool *p, int n, void (*fn)(void *ctx, int i, int thread), void *ctx) {
    if (n <= 0) return;
    if (p->n_threads == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    p->n = n;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->busy, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_items(p, 0);
    /* wait for the workers to check out; yield now and then in case one was preempted */
    for (int spins = 0; atomic_load_explicit(&p->busy, memory_order_acquire) > 0; spins++) {
        cpu_relax();
        if (spins % 1024 == 1023) sched_yield();
    }
}

/*
 * `orcd serve -m MODEL [--host H] [--port P] [--parallel N] [--ctx N] [--api-key K] ...`: the HTTP server
 * (worker API and OpenAI-compatible API, src/server/). Order of events: listen (so that /health and /ready
 * answer while loading), open the model, warm it up with one forward pass, /ready turns 200, the ready
 * callback (if any) is posted; then serve until SIGTERM or SIGINT, drain, exit 0.
 *
 * Built without libmicrohttpd or jansson, it says so and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include "../log.h"

#include <stdio.h>

#ifndef ORCD_SERVER

int cmd_serve(int argc, char **argv) {
    (void)argc, (void)argv;
    log_error("serve: built without the HTTP server (libmicrohttpd/jansson missing); tools/deps.sh installs them, "
              "then rebuild");
    return 1;
}

#else

#include "common.h"

#include "../server/callback.h"
#include "../server/server.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr,
            "usage: orcd serve -m MODEL [options]\n"
            "  --host ADDR            address to listen on (default 127.0.0.1)\n"
            "  --port N               port (default 8080; 0 = any free port, logged)\n"
            "  --parallel N           sequences decoding at once (default 4)\n"
            "  --queue N              requests waiting for a slot before 503 (default 64)\n"
            "  --api-key KEY          require Authorization: Bearer KEY (also $ORCD_API_KEY)\n"
            "  --worker-id ID         this worker's name for the orchestrator (default: host name)\n"
            "  --callback-url URL     POST {worker_id, model, vram_bytes, uri} there once ready (retried)\n"
            "  --gpu-device N         CUDA device (default 0)\n"
            "  --name NAME            the model id in the APIs (default: the file name without .gguf)\n"
            "  --max-body BYTES       largest request body (default 1048576)\n"
            "  --idle-timeout S       close connections idle this long (default 30)\n"
            "  --max-request-time S   end generations running longer (default 600)\n"
            "  --drain-timeout S      on SIGTERM, time running requests get to finish (default 30)\n"
            "  --max-connections N    (default 512)\n"
            "  --batch N              tokens per forward step (default 512)\n"
            "  sampling options set the defaults for fields a request leaves out:\n%s",
            CLI_OPTIONS_HELP);
}

/* llama.cpp's general.file_type values for the mixes people name models by. */
static const char *file_type_name(const GGUFFile *f) {
    static const char *const NAMES[] = {[0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0",
                                        [8] = "Q5_0", [9] = "Q5_1", [10] = "Q2_K", [11] = "Q3_K_S",
                                        [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M",
                                        [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K", [32] = "BF16"};
    int64_t t;
    if (gguf_get_int(f, "general.file_type", &t) || t < 0 || t >= (int64_t)(sizeof NAMES / sizeof *NAMES) || !NAMES[t])
        return "unknown";
    return NAMES[t];
}

static long parse_long(const char *name, const char *v, long lo, long hi, int *bad) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || x < lo || x > hi) {
        log_error("%s: expected an integer in %ld..%ld, found \"%s\"", name, lo, hi, v ? v : "");
        *bad = 1;
    }
    return x;
}

/* One token through the engine before /ready says yes: the first forward pass pays for page faults and
 * thread start-up. */
static int warm_up(CliModel *cm) {
    int32_t tok = tokenizer_bos(cm->tok) >= 0 ? tokenizer_bos(cm->tok) : 0;
    int done = 0;
    EngineRequest r = {.prompt = &tok, .n_prompt = 1, .max_tokens = 1, .sampling = sampler_defaults(),
                       .ignore_eog = true, .user = &done};
    r.sampling.temperature = 0;
    r.on_done = NULL;
    uint64_t id;
    char err[256];
    if (engine_submit(cm->engine, &r, &id, err, sizeof err) != ENGINE_OK) {
        log_error("serve: warm-up: %s", err);
        return -1;
    }
    while (engine_step(cm->engine) > 0) {
    }
    return 0;
}

static void *engine_thread(void *arg) {
    engine_run(arg);
    return NULL;
}

int cmd_serve(int argc, char **argv) {
    ServerOptions so = server_defaults();
    SamplerParams sp = sampler_defaults();
    bool seed_set = false;
    EngineOptions eo = engine_defaults();
    const char *path = NULL, *worker_id = NULL, *callback_url = NULL, *name = NULL;
    so.api_key = getenv("ORCD_API_KEY");
    if (so.api_key && !*so.api_key) so.api_key = NULL;
    int bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = cli_parse_option(argc, argv, &i, &sp, &seed_set, &eo);
        if (rc < 0) return 1;
        if (rc > 0) continue;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) path = v, i++;
        else if (!strcmp(a, "--host") && v) so.host = v, i++;
        else if (!strcmp(a, "--port")) so.port = (int)parse_long(a, v, 0, 65535, &bad), i++;
        else if (!strcmp(a, "--queue")) eo.max_queue = (int)parse_long(a, v, 1, 1 << 20, &bad), i++;
        else if (!strcmp(a, "--api-key") && v) so.api_key = v, i++;
        else if (!strcmp(a, "--worker-id") && v) worker_id = v, i++;
        else if (!strcmp(a, "--callback-url") && v) callback_url = v, i++;
        else if (!strcmp(a, "--gpu-device")) eo.gpu_device = (int)parse_long(a, v, 0, 1024, &bad), i++;
        else if (!strcmp(a, "--name") && v) name = v, i++;
        else if (!strcmp(a, "--max-body")) so.max_body = (size_t)parse_long(a, v, 1024, 1L << 30, &bad), i++;
        else if (!strcmp(a, "--idle-timeout")) so.idle_timeout_s = (int)parse_long(a, v, 1, 86400, &bad), i++;
        else if (!strcmp(a, "--max-request-time")) so.max_request_s = (int)parse_long(a, v, 1, 86400 * 7, &bad), i++;
        else if (!strcmp(a, "--drain-timeout")) so.drain_timeout_s = (int)parse_long(a, v, 0, 86400, &bad), i++;
        else if (!strcmp(a, "--max-connections")) so.max_connections = (int)parse_long(a, v, 1, 65536, &bad), i++;
        else {
            usage();
            return 1;
        }
    }
    if (bad) return 1;
    if (!path) {
        log_error("serve: expected -m MODEL");
        return 1;
    }
    char err[512];
    if (sampler_validate(&sp, err, sizeof err)) {
        log_error("serve: %s", err);
        return 1;
    }
    so.defaults = sp;
    char model_name[256], host_name[256] = "orcd";
    if (!name) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
        snprintf(model_name, sizeof model_name, "%.*s", (int)n, base);
        name = model_name;
    }
    so.model_name = name;
    if (!worker_id) {
        gethostname(host_name, sizeof host_name - 1);
        worker_id = host_name;
    }

    /* SIGTERM and SIGINT are taken by sigwait below; every thread started from here on blocks them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    Server *srv = server_start(&so, err, sizeof err);
    if (!srv) {
        log_error("serve: %s", err);
        return 1;
    }
    log_info("listening on http://%s:%d (loading %s)", so.host, server_port(srv), path);
    CliModel cm;
    if (cli_open(&cm, path, &eo) || warm_up(&cm)) {
        server_stop(srv);
        return 1;
    }
    const Backend *be = engine_backend(cm.engine);
    ServerModelInfo info = {.arch = cm.model->config.arch->name, .quant = file_type_name(cm.model->file),
                            .backend = backend_name(be->kind),
                            .memory_bytes = be->weight_bytes + be->kv_bytes + be->scratch_bytes,
                            .on_gpu = be->kind == BACKEND_CUDA, .vocab_size = tokenizer_n_vocab(cm.tok),
                            .n_ctx = eo.n_ctx, .n_slots = eo.n_slots, .model_ctx = cm.model->config.n_ctx};
    pthread_t et;
    if (pthread_create(&et, NULL, engine_thread, cm.engine)) {
        log_error("serve: cannot start the engine thread");
        server_stop(srv);
        cli_close(&cm);
        return 1;
    }
    server_attach(srv, cm.engine, cm.tok, &cm.tmpl, &info);
    log_info("ready: %s (%s, %s) on %s, %d parallel x %d tokens, http://%s:%d", name, info.arch, info.quant,
             info.backend, eo.n_slots, eo.n_ctx, so.host, server_port(srv));

    Callback *cb = NULL;
    if (callback_url) {
        char uri[300];
        snprintf(uri, sizeof uri, "http://%s:%d", so.host, server_port(srv));
        json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "worker_id", worker_id, "model", name, "vram_bytes",
                              (json_int_t)(info.on_gpu ? info.memory_bytes : 0), "uri", uri);
        char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (body) cb = callback_start(callback_url, body);
        free(body);
    }

    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    callback_stop(cb);
    server_drain(srv);
    engine_shutdown(cm.engine, true);
    pthread_join(et, NULL);
    server_stop(srv);
    cli_close(&cm);
    log_info("stopped");
    return 0;
}

#endif

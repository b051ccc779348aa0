#!/usr/bin/env python3
"""Load generator for `orcd serve` (loopback only): streams requests through the worker API (/execute) or the
OpenAI API (/v1/completions, stream: true) at several concurrency levels, each bounded by a number of requests
and a time limit, and prints per level: requests/s, time to first token p50/p99, inter-token latency p50/p99
and aggregate generated tok/s. Times are taken on the client side, as a user sees them.

  python3 bench/loadgen.py --model models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf     # starts orcd serve itself
  python3 bench/loadgen.py --url http://127.0.0.1:8080 --levels 1,8,32                # an orcd serve already running

A program that prints figures; it asserts nothing."""
import argparse
import http.client
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def loopback_only(host: str):
    for info in socket.getaddrinfo(host, None):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            sys.exit(f"loadgen: {host} is not a loopback address; this tool only loads the local machine")


def one_request(host, port, api, body, headers):
    """(ttft seconds, [inter-token gaps], tokens, ok) for one streamed request."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    path = "/execute" if api == "worker" else "/v1/completions"
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    if resp.status != 200:
        resp.read()
        conn.close()
        return None, [], 0, False
    ttft, gaps, last, n, ok, event = None, [], None, 0, False, None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.rstrip(b"\r\n")
        if line.startswith(b"event: "):
            event = line[7:]
        elif line.startswith(b"data: "):
            data = line[6:]
            is_token = event == b"token" if api == "worker" else (data != b"[DONE]" and b'"text":""' not in data)
            if api == "openai" and data == b"[DONE]":
                ok = True
                break
            if api == "worker" and event in (b"end", b"error"):
                ok = event == b"end"
                break
            if is_token:
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - t0
                else:
                    gaps.append(now - last)
                last = now
                n += 1
    conn.close()
    return ttft, gaps, n, ok


def run_level(host, port, api, concurrency, n_requests, max_time, body, headers):
    lock = threading.Lock()
    issued = [0]
    ttfts, gaps, tokens, failures, completed = [], [], [0], [0], [0]
    deadline = time.perf_counter() + max_time

    def worker():
        while True:
            with lock:
                if issued[0] >= n_requests or time.perf_counter() > deadline:
                    return
                issued[0] += 1
                seed = issued[0]
            t, g, n, ok = one_request(host, port, api, {**body, "seed": seed}, headers)
            with lock:
                if not ok:
                    failures[0] += 1
                else:
                    completed[0] += 1
                if t is not None:
                    ttfts.append(t)
                gaps.extend(g)
                tokens[0] += n

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = completed[0]
    print(f"streams {concurrency:3d}: {done:4d} requests in {wall:6.1f} s = {done / wall:6.2f} req/s | "
          f"TTFT p50 {percentile(ttfts, 50) * 1e3:7.1f} ms p99 {percentile(ttfts, 99) * 1e3:7.1f} ms | "
          f"inter-token p50 {percentile(gaps, 50) * 1e3:6.1f} ms p99 {percentile(gaps, 99) * 1e3:6.1f} ms | "
          f"{tokens[0] / wall:7.1f} tok/s aggregate" + (f" | {failures[0]} failed" if failures[0] else ""),
          flush=True)


def start_server(orcd, model, parallel, ctx, extra):
    log = open(os.environ.get("LOADGEN_LOG", "/tmp/loadgen-serve.log"), "wb")
    proc = subprocess.Popen([orcd, "serve", "-m", model, "--port", "0", "--parallel", str(parallel), "--ctx", str(ctx),
                             *extra], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = Path(log.name).read_text(errors="replace")
        m = re.search(r"listening on http://[^:]+:(\d+)", text)
        if m and "ready:" in text:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            sys.exit(f"loadgen: orcd serve exited:\n{text}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("loadgen: orcd serve not ready after 300 s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an orcd serve to load (loopback only)")
    ap.add_argument("--model", help="start `orcd serve` on this model instead (with --parallel = the largest level)")
    ap.add_argument("--orcd", default=str(REPO / "build" / "orcd"))
    ap.add_argument("--levels", default="1,8,32", help="concurrent streams per level")
    ap.add_argument("--requests", type=int, default=0, help="requests per level (default: 2 x streams, at least 4)")
    ap.add_argument("--max-time", type=float, default=60, help="seconds per level at most")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Write a short story about a lighthouse keeper and a storm.")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--stop-at-eos", action="store_true",
                    help="let requests end at an end-of-turn token (default: ignore_eos, max_tokens each)")
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--api", choices=["worker", "openai"], default="worker")
    ap.add_argument("--api-key")
    ap.add_argument("--ctx", type=int, default=1024, help="--ctx for the server it starts")
    ap.add_argument("serve_args", nargs="*", help="more flags for the server it starts (after --)")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    proc = None
    if a.model:
        proc, port = start_server(a.orcd, a.model, max(levels), a.ctx, a.serve_args)
        host = "127.0.0.1"
    elif a.url:
        u = urlparse(a.url)
        host, port = u.hostname, u.port or 80
        loopback_only(host)
    else:
        ap.error("give --url or --model")
    headers = {"Authorization": f"Bearer {a.api_key}"} if a.api_key else {}
    body = {"prompt": a.prompt, "max_tokens": a.max_tokens, "temperature": a.temperature, "top_k": a.top_k,
            "ignore_eos": not a.stop_at_eos}
    if a.api == "openai":
        body["stream"] = True
    try:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        print(f"orcd at {host}:{port}: {health.get('model')} ({health.get('quant')}, {health.get('backend')}), "
              f"parallel {health.get('parallel')}; {a.max_tokens} tokens per request, temperature {a.temperature}, "
              f"top_k {a.top_k}, API {a.api}; "
              f"{os.cpu_count()} CPUs here", flush=True)
        one_request(host, port, a.api, {**body, "max_tokens": 4}, headers)  # warm
        for c in levels:
            run_level(host, port, a.api, c, a.requests or max(4, 2 * c), a.max_time, body, headers)
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()

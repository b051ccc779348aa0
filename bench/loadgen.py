#!/usr/bin/env python3
"""Load generator for `orcd serve` (loopback only): streams requests through the worker API (/execute) or the
OpenAI API (/v1/completions, stream: true) at several concurrency levels, each bounded by a number of requests
and a time limit, and prints per level: requests/s, time to first token p50/p99, inter-token latency p50/p99
and aggregate generated tok/s. Times are taken on the client side, as a user sees them.

With --decode-streams 16,64 it also measures aggregate decode tok/s as llama.cpp's llama-batched-bench does:
N requests at once, each with a --decode-prompt-tokens prompt and exactly --decode-tokens new tokens
(ignore_eos); the figure is the tokens that arrived while all N streams were decoding (from the moment the last
stream got its first token to the moment the first stream got its last) divided by that window, the median of
--decode-rounds rounds.

  python3 bench/loadgen.py --model models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf     # starts orcd serve itself
  python3 bench/loadgen.py --url http://127.0.0.1:8080 --levels 1,8,32                # an orcd serve already running
  python3 bench/loadgen.py --model M.gguf --orcd build/srv/orcd --parallel 64 --decode-streams 16,64 \\
      --reference 16:3854,64:10308                                                    # next to llama.cpp's figures

A program that prints figures; it asserts nothing. Only the Python standard library."""
import argparse
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
TOKEN_INDEX = re.compile(rb'"i":\s*(\d+)')
REQUEST_TIMEOUT = 120.0  # seconds without a byte from the server before a request counts as failed


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


class Stream:
    """One streamed request as the client saw it: when it was sent (t0), when each new token arrived (times,
    perf_counter seconds), whether it ended well, and the prompt length the server reported."""

    def __init__(self):
        self.t0, self.times, self.ok, self.prompt_tokens, self.error = 0.0, [], False, None, None

    @property
    def ttft(self):
        return self.times[0] - self.t0 if self.times else None

    @property
    def gaps(self):
        return [b - a for a, b in zip(self.times, self.times[1:])]


def stream_request(host, port, api, body, headers) -> Stream:
    """Send one streaming request and read its server-sent events in large reads (read1), so that a client
    thread costs little per token even at tens of thousands of tokens per second; tokens that arrive in one
    read share its time stamp. Worker API: a token is a `token` event with a new index `i` (the held-back
    text at the end repeats the last index and is not counted). OpenAI API: a chunk with non-empty text."""
    s = Stream()
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    path = "/execute" if api == "worker" else "/v1/completions"
    s.t0 = time.perf_counter()
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        if resp.status != 200:
            s.error = f"HTTP {resp.status}: {resp.read()[:200]!r}"
            return s
        buf, last_i = b"", -1
        while True:
            data = resp.read1(65536)
            if not data:
                break
            now = time.perf_counter()
            buf += data
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                if api == "worker":
                    if ev.startswith(b"event: token"):
                        m = TOKEN_INDEX.search(ev)
                        i = int(m.group(1)) if m else last_i + 1
                        if i != last_i:
                            s.times.append(now)
                            last_i = i
                    elif ev.startswith(b"event: metrics"):
                        s.prompt_tokens = json.loads(ev.split(b"data: ", 1)[1]).get("prompt_tokens")
                    elif ev.startswith(b"event: end"):
                        s.ok = True
                    elif ev.startswith(b"event: error"):
                        s.error = ev.split(b"data: ", 1)[-1].decode(errors="replace")
                elif ev.startswith(b"data: "):
                    d = ev[6:]
                    if d == b"[DONE]":
                        s.ok = s.error is None
                    elif d.startswith(b'{"error"'):
                        s.error = d.decode(errors="replace")
                    elif b'"usage":{' in d or b'"usage": {' in d:
                        s.prompt_tokens = (json.loads(d).get("usage") or {}).get("prompt_tokens")
                    elif b'"text":""' not in d and b'"text": ""' not in d:
                        s.times.append(now)
    except (OSError, http.client.HTTPException) as e:
        s.error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return s


def run_level(host, port, api, concurrency, n_requests, max_time, body, headers):
    lock = threading.Lock()
    issued = [0]
    streams = []
    deadline = time.perf_counter() + max_time

    def worker():
        while True:
            with lock:
                if issued[0] >= n_requests or time.perf_counter() > deadline:
                    return
                issued[0] += 1
                seed = issued[0]
            s = stream_request(host, port, api, {**body, "seed": seed}, headers)
            with lock:
                streams.append(s)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = sum(s.ok for s in streams)
    failed = [s for s in streams if not s.ok]
    ttfts = [s.ttft for s in streams if s.ttft is not None]
    gaps = [g for s in streams for g in s.gaps]
    tokens = sum(len(s.times) for s in streams)
    row = {"streams": concurrency, "requests": done, "wall": wall, "rps": done / wall,
           "ttft50": percentile(ttfts, 50), "ttft99": percentile(ttfts, 99),
           "itl50": percentile(gaps, 50), "itl99": percentile(gaps, 99), "tok_s": tokens / wall,
           "failed": len(failed)}
    print(f"streams {concurrency:3d}: {done:4d} requests in {wall:6.1f} s = {row['rps']:6.2f} req/s | "
          f"TTFT p50 {row['ttft50'] * 1e3:7.1f} ms p99 {row['ttft99'] * 1e3:7.1f} ms | "
          f"inter-token p50 {row['itl50'] * 1e3:6.1f} ms p99 {row['itl99'] * 1e3:6.1f} ms | "
          f"{row['tok_s']:7.1f} tok/s aggregate" +
          (f" | {len(failed)} failed, e.g. {failed[0].error}" if failed else ""), flush=True)
    return row


def decode_window(streams):
    """(tokens, seconds) that arrived while every stream was decoding: after the last stream's first token,
    up to the first stream's last token. None when the streams never all decoded at once."""
    if not streams or any(len(s.times) < 2 for s in streams):
        return None
    t_a = max(s.times[0] for s in streams)
    t_b = min(s.times[-1] for s in streams)
    if t_b <= t_a:
        return None
    n = sum(1 for s in streams for t in s.times if t_a < t <= t_b)
    return n, t_b - t_a


def run_decode(host, port, api, n, rounds, max_time, body, headers, reference):
    """Aggregate decode tok/s at n streams: `rounds` rounds of n requests sent together."""
    rates, overall, ttfts, prompt_tokens, failures = [], [], [], set(), []
    deadline = time.perf_counter() + max_time
    for r in range(rounds):
        if r and time.perf_counter() > deadline:
            break
        streams = [None] * n
        start = threading.Barrier(n)

        def worker(k, r=r):
            start.wait()
            streams[k] = stream_request(host, port, api, {**body, "seed": 1000 * r + k}, headers)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failures += [s.error or "ended without a terminal event" for s in streams if not s.ok]
        ttfts += [s.ttft for s in streams if s.ttft is not None]
        prompt_tokens |= {s.prompt_tokens for s in streams if s.prompt_tokens is not None}
        got = [s for s in streams if s.ok]
        w = decode_window(got) if len(got) == n else None
        if w:
            rates.append(w[0] / w[1])
        t_first, t_last = min(s.t0 for s in streams), max((s.times[-1] for s in got if s.times), default=None)
        if t_last:
            overall.append(sum(len(s.times) for s in got) / (t_last - t_first))
    rate = statistics.median(rates) if rates else float("nan")
    row = {"streams": n, "decode_tok_s": rate, "rounds": rates, "overall_tok_s": statistics.median(overall)
           if overall else float("nan"), "ttft50": percentile(ttfts, 50), "ttft99": percentile(ttfts, 99),
           "prompt_tokens": sorted(prompt_tokens), "failed": len(failures), "reference": reference.get(n)}
    ref = reference.get(n)
    print(f"decode {n:3d} streams: {rate:8.1f} tok/s while all decode (median of "
          f"{', '.join(f'{x:.0f}' for x in rates) or 'no round'}) | {row['overall_tok_s']:8.1f} tok/s counting "
          f"prefill | TTFT p50 {row['ttft50'] * 1e3:7.1f} ms p99 {row['ttft99'] * 1e3:7.1f} ms | prompt "
          f"{'/'.join(map(str, row['prompt_tokens'])) or '?'} tokens" +
          (f" | llama.cpp {ref:,.0f} tok/s, x{rate / ref:.2f}" if ref else "") +
          (f" | {len(failures)} failed, e.g. {failures[0]}" if failures else ""), flush=True)
    return row


def print_tables(levels, decodes, title):
    print(f"\n{title}\n")
    if levels:
        print("| streams | requests | req/s | TTFT p50 | TTFT p99 | inter-token p50 | inter-token p99 | tok/s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in levels:
            done = f"{r['requests']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
            print(f"| {r['streams']} | {done} | {r['rps']:.2f} | {r['ttft50'] * 1e3:.1f} ms | {r['ttft99'] * 1e3:.1f} ms "
                  f"| {r['itl50'] * 1e3:.2f} ms | {r['itl99'] * 1e3:.2f} ms | {r['tok_s']:.0f} |")
    if decodes:
        if levels:
            print()
        print("| streams | decode tok/s (all decoding) | with prefill | TTFT p50 | llama.cpp | orcd / llama.cpp |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in decodes:
            ref = r["reference"]
            refs = (f"{ref:,.0f}", f"{r['decode_tok_s'] / ref:.2f}x") if ref else ("-", "-")
            fail = f" ({r['failed']} failed)" if r["failed"] else ""
            print(f"| {r['streams']}{fail} | {r['decode_tok_s']:,.0f} | {r['overall_tok_s']:,.0f} "
                  f"| {r['ttft50'] * 1e3:.1f} ms | {refs[0]} | {refs[1]} |")
    sys.stdout.flush()


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


def int_list(s):
    return [int(x) for x in s.split(",") if x.strip()] if s else []


def main():
    global REQUEST_TIMEOUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an orcd serve to load (loopback only)")
    ap.add_argument("--model", help="start `orcd serve` on this model instead")
    ap.add_argument("--orcd", default=str(REPO / "build" / "orcd"))
    ap.add_argument("--parallel", type=int, default=0,
                    help="--parallel for the server it starts (default: the most streams asked for)")
    ap.add_argument("--levels", default="1,8,32", help="concurrent streams per latency level ('' for none)")
    ap.add_argument("--requests", type=int, default=0, help="requests per level (default: 2 x streams, at least 4)")
    ap.add_argument("--max-time", type=float, default=60, help="seconds per level at most")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Write a short story about a lighthouse keeper and a storm.")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--stop-at-eos", action="store_true",
                    help="let requests end at an end-of-turn token (default: ignore_eos, max_tokens each)")
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--decode-streams", default="",
                    help="aggregate decode tok/s at these stream counts, e.g. 16,64 (default: none)")
    ap.add_argument("--decode-tokens", type=int, default=128, help="new tokens per decode request (ignore_eos)")
    ap.add_argument("--decode-prompt-tokens", type=int, default=128,
                    help="prompt length of the decode requests (the word ' the' that many times)")
    ap.add_argument("--decode-rounds", type=int, default=3, help="rounds per stream count; the median is shown")
    ap.add_argument("--reference", default="",
                    help="STREAMS:TOK_S,... figures to print next to the decode ones, e.g. llama.cpp's 16:3854,64:10308")
    ap.add_argument("--title", default="", help="a line above the summary tables")
    ap.add_argument("--require-backend", choices=["cpu", "cuda"],
                    help="stop at once unless /health reports this backend (a GPU run that fell back to the CPU)")
    ap.add_argument("--request-timeout", type=float, default=REQUEST_TIMEOUT,
                    help="seconds without a byte from the server before a request fails (default 120)")
    ap.add_argument("--api", choices=["worker", "openai"], default="worker")
    ap.add_argument("--api-key")
    ap.add_argument("--ctx", type=int, default=1024, help="--ctx for the server it starts")
    ap.add_argument("serve_args", nargs="*", help="more flags for the server it starts (after --)")
    a = ap.parse_args()
    REQUEST_TIMEOUT = a.request_timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server it started on the way out
    levels, decode_streams = int_list(a.levels), int_list(a.decode_streams)
    reference = {int(k): float(v) for k, v in (x.split(":") for x in a.reference.split(",") if x)}
    proc = None
    if a.model:
        parallel = a.parallel or max(levels + decode_streams)
        proc, port = start_server(a.orcd, a.model, parallel, a.ctx, a.serve_args)
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
    decode_body = {**body, "prompt": " the" * a.decode_prompt_tokens, "max_tokens": a.decode_tokens,
                   "ignore_eos": True}
    if a.api == "openai":
        body["stream"] = decode_body["stream"] = True
        decode_body["stream_options"] = {"include_usage": True}
    try:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        print(f"orcd at {host}:{port}: {health.get('model')} ({health.get('quant')}, {health.get('backend')}), "
              f"parallel {health.get('parallel')}; {a.max_tokens} tokens per request, temperature {a.temperature}, "
              f"top_k {a.top_k}, API {a.api}; "
              f"{os.cpu_count()} CPUs here", flush=True)
        if a.require_backend and health.get("backend") != a.require_backend:
            sys.exit(f"loadgen: the server runs on the {health.get('backend')} backend, not {a.require_backend}; "
                     f"its log says why" + (f" ({os.environ.get('LOADGEN_LOG', '/tmp/loadgen-serve.log')})"
                                            if proc else ""))
        stream_request(host, port, a.api, {**body, "max_tokens": 4}, headers)  # warm
        rows = [run_level(host, port, a.api, c, a.requests or max(4, 2 * c), a.max_time, body, headers)
                for c in levels]
        if decode_streams:
            print(f"aggregate decode: {a.decode_rounds} rounds of N requests sent together, "
                  f"{a.decode_prompt_tokens}-token prompts, {a.decode_tokens} new tokens each", flush=True)
        drows = [run_decode(host, port, a.api, n, a.decode_rounds, a.max_time, decode_body, headers, reference)
                 for n in decode_streams]
        title = a.title or (f"{health.get('model')} ({health.get('quant')}, {health.get('backend')} backend), "
                            f"parallel {health.get('parallel')}")
        print_tables(rows, drows, title)
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()

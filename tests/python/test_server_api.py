"""`orcd serve` on a tiny random model: the worker API's events, cancel, client disconnects, concurrency,
the queue limit, timeouts, the ready callback and SIGTERM drain. Content does not matter here (the weights
are random); counts, order, timing bounds and freed resources do. Requests set ignore_eos: a random model
samples an end-of-turn token now and then, and these tests need lengths that only max_tokens decides."""
import http.server
import json
import re
import signal
import socket
import threading
import time

import pytest

requests = pytest.importorskip("requests")

from test_server_harness import (SLOW, Server, parse_sse, raw_request, read_until,  # noqa: F401
                                 server_logs, tiny_model)


@pytest.fixture(scope="module")
def srv(orcd_bin, tiny_model, server_logs):
    s = Server(orcd_bin, tiny_model, "--parallel", "4", "--ctx", "8192", log_dir=server_logs)
    yield s
    s.stop()


def terminal(events):
    return [(e, d) for e, d in events if e in ("end", "error")]


def test_health_ready_models_metrics(srv, tiny_model):
    h = srv.get("/health").json()
    assert h["status"] == "ok" and h["resident"] is True and h["model"] == "tiny"
    assert h["vocab_size"] == 49152 and h["context_length"] == 8192 and h["quant"] == "Q8_0"
    assert h["ram_bytes"] > tiny_model.stat().st_size * 0.9  # weights + KV on the CPU
    r = srv.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    models = srv.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["tiny"]
    m = srv.metrics()
    for name in ("orcd_queue_depth", "orcd_kv_pages_used", "orcd_kv_pages_total", "orcd_requests_running",
                 "orcd_time_to_first_token_seconds_count", "orcd_inter_token_seconds_count",
                 "orcd_prompt_tokens_total", "orcd_generated_tokens_total", "orcd_ready"):
        assert name in m, name
    assert m["orcd_ready"] == 1 and m["orcd_kv_pages_total"] == 4 * 8192 / 16


def test_execute_event_order(srv):
    before = srv.metrics()
    ev = srv.events({"job_id": "order-1", "ignore_eos": True, "prompt": "The quick brown fox", "max_tokens": 12,
                     "temperature": 0.5,
                     "seed": 7, "unknown_field": {"nested": [1, 2]}, "another": None})
    names = [e for e, _ in ev]
    assert names[0] == "started" and ev[0][1]["job_id"] == "order-1" and ev[0][1]["model"] == "tiny"
    assert "T" in ev[0][1]["started_at"]
    toks = [d for e, d in ev if e == "token"]
    assert [t["i"] for t in toks][:12] == list(range(12))
    assert all(isinstance(t["t"], str) for t in toks)
    assert len(terminal(ev)) == 1 and names[-1] == "end"  # exactly one terminal event, and it is the last
    assert names.index("metrics") < names.index("end")
    end = ev[-1][1]
    assert end["tokens_out"] == 12 and end["stop_reason"] == "length" and end["decode_time_ms"] >= 0
    after = srv.metrics()
    assert after["orcd_generated_tokens_total"] - before["orcd_generated_tokens_total"] == 12
    assert after['orcd_requests_total{route="execute",outcome="OK"}'] == \
        before.get('orcd_requests_total{route="execute",outcome="OK"}', 0) + 1
    assert after["orcd_time_to_first_token_seconds_count"] == before["orcd_time_to_first_token_seconds_count"] + 1
    assert after["orcd_inter_token_seconds_count"] == before["orcd_inter_token_seconds_count"] + 11


def test_same_seed_same_stream(srv):
    body = {"ignore_eos": True, "prompt": "Once upon a time", "max_tokens": 16, "temperature": 1.0, "seed": 42,
            "top_k": 50}
    a = "".join(d["t"] for e, d in srv.events(body) if e == "token")
    b = "".join(d["t"] for e, d in srv.events(body) if e == "token")
    assert a == b and a


def test_stop_string_ends_before_it(srv):
    body = {"ignore_eos": True, "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "seed": 1}
    full = "".join(d["t"] for e, d in srv.events(body) if e == "token")
    assert len(full) > 12
    stop = full[8:12]
    ev = srv.events({**body, "stop": [stop, "zzzz-never"]})
    text = "".join(d["t"] for e, d in ev if e == "token")
    assert ev[-1][0] == "end" and ev[-1][1]["stop_reason"] == "stop"
    assert stop not in text and full.startswith(text) and len(text) <= full.index(stop)


def test_cancel_by_job_id(srv):
    body = {"job_id": "cancel-me", "ignore_eos": True, "prompt": "Hello", "max_tokens": 8000}
    r = srv.post("/execute", body, stream=True)
    assert r.status_code == 200
    lines = r.iter_lines()
    events = []
    for e, d in parse_sse(lines):
        events.append((e, d))
        if e == "token" and d["i"] >= 3:
            break
    # a second job with the same id while it runs is a conflict
    dup = srv.post("/execute", {"job_id": "cancel-me", "ignore_eos": True, "prompt": "Hello", "max_tokens": 4})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "CONFLICT"
    t0 = time.monotonic()
    c = srv.post("/cancel", {"job_id": "cancel-me"})
    assert c.status_code == 202 and c.json()["found"] is True
    events += list(parse_sse(lines))
    elapsed = time.monotonic() - t0
    assert len(terminal(events)) == 1
    assert events[-1] == ("error", {"code": "CANCELLED", "message": "cancelled", "retriable": False})
    assert elapsed < 1.0 * SLOW, f"cancel took {elapsed:.3f} s"
    srv.wait_idle(timeout=1.0 * SLOW)
    # idempotent: again, and for ids never seen
    for job in ("cancel-me", "never-was"):
        c = srv.post("/cancel", {"job_id": job})
        assert c.status_code == 202 and c.json()["found"] is False


def test_disconnect_mid_decode_frees_slot_and_kv(srv):
    body = {"ignore_eos": True, "prompt": "Hello", "max_tokens": 8000}
    s = raw_request(srv.port, "POST", "/execute", json.dumps(body).encode())
    got = read_until(s, b'"i":5}')
    assert b"event: started" in got and b'"i":5}' in got
    m = srv.metrics()
    assert m["orcd_requests_running"] == 1 and m["orcd_kv_pages_used"] > 0
    s.close()
    freed = srv.wait_idle(timeout=1.0 * SLOW)
    print(f"slot and KV pages free {freed * 1000:.0f} ms after the client closed (mid-decode)")
    assert srv.metrics()['orcd_requests_total{route="execute",outcome="CANCELLED"}'] >= 1


def test_disconnect_mid_prefill_frees_slot_and_kv(orcd_bin, tiny_model, server_logs):
    # a long prompt in prefill chunks of 8 tokens: the client leaves before the first token
    s = Server(orcd_bin, tiny_model, "--parallel", "1", "--ctx", "8192", "--batch", "8", log_dir=server_logs)
    try:
        prompt = " ".join(f"w{i}" for i in range(1200))  # ~5,500 tokens
        body = {"ignore_eos": True, "prompt": prompt, "max_tokens": 4}
        sock = raw_request(s.port, "POST", "/execute", json.dumps(body).encode())
        got = read_until(sock, b"event: started")
        assert b"event: started" in got
        time.sleep(0.2)
        sock.setblocking(False)
        try:
            more = sock.recv(65536)
        except BlockingIOError:
            more = b""
        assert b"event: token" not in more, "prefill finished before the client left: make the prompt longer"
        m = s.metrics()
        assert m["orcd_requests_running"] == 1 and m["orcd_kv_pages_used"] > 0
        sock.close()
        freed = s.wait_idle(timeout=1.0 * SLOW)
        print(f"slot and KV pages free {freed * 1000:.0f} ms after the client closed (mid-prefill)")
        assert re.search(r"prompt \+ 0 generated tokens", s.log()) and "went away" in s.log()
        assert s.get("/health").status_code == 200
    finally:
        s.stop()


def test_eight_concurrent_streams(srv):
    results = [None] * 8

    def run(k):
        results[k] = srv.events({"job_id": f"c{k}", "ignore_eos": True, "prompt": f"Stream number {k}",
                                 "max_tokens": 10 + k,
                                 "seed": k})

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120 * SLOW)
    for k, ev in enumerate(results):
        assert ev is not None, f"stream {k} did not finish"
        assert ev[0][0] == "started" and ev[0][1]["job_id"] == f"c{k}"
        assert len(terminal(ev)) == 1 and ev[-1][0] == "end" and ev[-1][1]["tokens_out"] == 10 + k
        assert [d["i"] for e, d in ev if e == "token"] == list(range(10 + k))
    srv.wait_idle()


@pytest.mark.parametrize("words,max_tokens", [(1000, 5000), (3000, None)])
def test_context_exceeded_gives_counts(srv, words, max_tokens):
    prompt = " ".join(f"w{i}" for i in range(words))
    r = srv.post("/execute", {"prompt": prompt, **({"max_tokens": max_tokens} if max_tokens else {})})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "CONTEXT_EXCEEDED" and err["retriable"] is False
    assert err["context_length"] == 8192 and err["prompt_tokens"] + (max_tokens or 1) > 8192
    assert str(err["prompt_tokens"]) in err["message"]


def test_queue_full_gives_503(orcd_bin, tiny_model, server_logs):
    s = Server(orcd_bin, tiny_model, "--parallel", "1", "--queue", "1", log_dir=server_logs)
    try:
        a = s.post("/execute", {"job_id": "A", "ignore_eos": True, "prompt": "Hello", "max_tokens": 4000}, stream=True)
        a_lines = a.iter_lines()
        for e, d in parse_sse(a_lines):
            if e == "token":
                break
        b = s.post("/execute", {"job_id": "B", "ignore_eos": True, "prompt": "Hello", "max_tokens": 4000}, stream=True)
        b_lines = b.iter_lines()
        deadline = time.monotonic() + 10
        while s.metrics()["orcd_queue_depth"] != 1:
            assert time.monotonic() < deadline, "B never queued"
            time.sleep(0.02)
        for path, body in (("/execute", {"ignore_eos": True, "prompt": "Hello", "max_tokens": 4}),
                           ("/v1/completions", {"ignore_eos": True, "prompt": "Hello", "max_tokens": 4})):
            c = s.post(path, body)
            assert c.status_code == 503 and c.headers["Retry-After"] == "1"
            err = c.json()["error"]
            assert err.get("code") in ("OVERLOADED", "overloaded") and err["retriable"] is True
        assert s.post("/cancel", {"job_id": "B"}).json()["found"] is True  # cancelled while queued
        b_events = list(parse_sse(b_lines))
        assert b_events[-1][0] == "error" and b_events[-1][1]["code"] == "CANCELLED"
        assert [e for e, _ in b_events if e == "token"] == []
        s.post("/cancel", {"job_id": "A"})
        assert list(parse_sse(a_lines))[-1][1]["code"] == "CANCELLED"
        s.wait_idle()
        m = s.metrics()
        assert m['orcd_requests_total{route="execute",outcome="OVERLOADED"}'] == 1
        assert m['orcd_requests_total{route="completions",outcome="OVERLOADED"}'] == 1
    finally:
        s.stop()


class _Orchestrator(http.server.BaseHTTPRequestHandler):
    """Fails the first registration with 500, accepts the second."""
    calls: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Orchestrator.calls.append((self.path, json.loads(body)))
        self.send_response(500 if len(_Orchestrator.calls) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_callback_timeouts_and_slow_clients(orcd_bin, tiny_model, server_logs):
    orch = http.server.HTTPServer(("127.0.0.1", 0), _Orchestrator)
    threading.Thread(target=orch.serve_forever, daemon=True).start()
    _Orchestrator.calls = []
    s = Server(orcd_bin, tiny_model, "--idle-timeout", "1", "--max-request-time", "1", "--worker-id", "w-7",
               "--callback-url", f"http://127.0.0.1:{orch.server_port}/register", log_dir=server_logs)
    try:
        # the ready callback: the first attempt fails (500), the worker keeps serving and retries
        deadline = time.monotonic() + 10
        while len(_Orchestrator.calls) < 2:
            assert time.monotonic() < deadline, f"callback not retried: {_Orchestrator.calls}\n{s.log()}"
            assert s.get("/health").status_code == 200
            time.sleep(0.1)
        path, body = _Orchestrator.calls[1]
        assert path == "/register"
        assert body == {"worker_id": "w-7", "model": "tiny", "vram_bytes": 0, "uri": f"http://127.0.0.1:{s.port}"}
        assert "attempt 1 failed (answered HTTP 500)" in s.log()
        # a client that never finishes its headers is closed after the idle timeout
        slow = socket.create_connection(("127.0.0.1", s.port))
        slow.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\n")
        slow.settimeout(10)
        t0 = time.monotonic()
        try:
            assert slow.recv(100) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 5
        slow.close()
        # a generation past --max-request-time ends with TIMEOUT
        ev = s.events({"ignore_eos": True, "prompt": "Hello", "max_tokens": 4000})
        assert len(terminal(ev)) == 1 and ev[-1][0] == "error"
        assert ev[-1][1]["code"] == "TIMEOUT" and ev[-1][1]["retriable"] is True
        assert s.get("/health").status_code == 200
    finally:
        s.stop()
        orch.shutdown()


def test_sigterm_drains(orcd_bin, tiny_model, server_logs):
    s = Server(orcd_bin, tiny_model, "--parallel", "4", "--ctx", "8192", "--drain-timeout", str(2 * SLOW),
               log_dir=server_logs)
    out = {}

    def run(name, body):
        try:
            out[name] = s.events(body)
        except Exception as e:  # noqa: BLE001
            out[name] = e

    short = threading.Thread(target=run, args=("short", {"ignore_eos": True, "prompt": "Hi", "max_tokens": 40,
                                                          "temperature": 0}))
    # sampling at temperature 1 over the whole vocabulary: far slower than the drain timeout allows
    long = threading.Thread(target=run, args=("long", {"ignore_eos": True, "prompt": "Hi", "max_tokens": 8000,
                                                        "temperature": 1}))
    long.start()
    short.start()
    deadline = time.monotonic() + 10 * SLOW
    while s.metrics()["orcd_requests_running"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert s.proc.poll() is None  # still draining
    with pytest.raises(requests.ConnectionError):  # no longer accepting
        requests.get(s.base + "/health", timeout=5)
    short.join(60)
    long.join(60)
    log = s.stop(timeout=30 * SLOW)
    assert out["short"][-1][0] == "end" and out["short"][-1][1]["tokens_out"] == 40
    assert len(terminal(out["long"])) == 1 and out["long"][-1][0] == "error"
    assert out["long"][-1][1]["code"] == "SHUTTING_DOWN" and out["long"][-1][1]["retriable"] is True
    assert "SIGTERM" in log and "draining" in log

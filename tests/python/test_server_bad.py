"""A table of bad requests against `orcd serve` (tiny random model, --api-key, a small --max-body): each gets
the right 4xx with a JSON error in its API's shape (worker: error.code; OpenAI: error.type and error.code),
and the server keeps serving (/health after each, and a good request at the end)."""
import json

import pytest

from test_server_harness import Server, raw_request, read_until, server_logs, tiny_model  # noqa: F401

KEY = "sk-test-123"
MAX_BODY = 65536
EX, CMPL, CHAT, CANCEL = "/execute", "/v1/completions", "/v1/chat/completions", "/cancel"
MSG = [{"role": "user", "content": "hi"}]


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def ex(**kw) -> bytes:
    return j({"prompt": "hi", "max_tokens": 2, **kw})


def cm(**kw) -> bytes:
    return j({"model": "tiny", "prompt": "hi", "max_tokens": 2, **kw})


def ch(**kw) -> bytes:
    return j({"model": "tiny", "messages": MSG, "max_tokens": 2, **kw})


DEEP = b"[" * 30000 + b"]" * 30000
# (name, method, path, body, headers, status, error code (worker code or OpenAI code), field named in the message)
CASES = [
    # the body is not JSON, or not an object
    ("bad json", "POST", EX, b'{"prompt": "hi",', None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("empty body", "POST", EX, b"", None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("array body", "POST", EX, b"[1, 2]", None, 400, "INVALID_REQUEST", "found an array"),
    ("string body", "POST", CMPL, b'"hi"', None, 400, "invalid_request", "expected a JSON object"),
    ("trailing garbage", "POST", EX, b'{"prompt": "hi"} xyz', None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("invalid utf-8", "POST", EX, b'{"prompt": "h\xff\xfei"}', None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("invalid utf-8 chat", "POST", CHAT, b'{"messages": [{"role": "user", "content": "\xc3\x28"}]}', None, 400,
     "invalid_request", "invalid JSON"),
    ("lone surrogate escape", "POST", EX, b'{"prompt": "\\ud800"}', None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("deep nesting", "POST", EX, DEEP, None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("deep nesting in an unknown field", "POST", CHAT,
     b'{"messages": [], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", None, 400, "invalid_request", "invalid JSON"),
    ("huge integer", "POST", EX, b'{"prompt": "hi", "max_tokens": 123456789012345678901234567890}', None, 400,
     "INVALID_REQUEST", "invalid JSON"),
    ("huge real", "POST", EX, b'{"prompt": "hi", "temperature": 1e999}', None, 400, "INVALID_REQUEST", "invalid JSON"),
    ("NaN", "POST", EX, b'{"prompt": "hi", "temperature": NaN}', None, 400, "INVALID_REQUEST", "invalid JSON"),
    # the worker API's fields
    ("prompt missing", "POST", EX, j({"max_tokens": 2}), None, 400, "INVALID_REQUEST", "prompt"),
    ("prompt null", "POST", EX, j({"prompt": None}), None, 400, "INVALID_REQUEST", "prompt"),
    ("prompt number", "POST", EX, j({"prompt": 5}), None, 400, "INVALID_REQUEST", "prompt"),
    ("prompt empty", "POST", EX, j({"prompt": ""}), None, 400, "INVALID_REQUEST", "prompt"),
    ("job_id number", "POST", EX, ex(job_id=5), None, 400, "INVALID_REQUEST", "job_id"),
    ("job_id empty", "POST", EX, ex(job_id=""), None, 400, "INVALID_REQUEST", "job_id"),
    ("job_id too long", "POST", EX, ex(job_id="j" * 500), None, 400, "INVALID_REQUEST", "job_id"),
    ("max_tokens negative", "POST", EX, ex(max_tokens=-1), None, 400, "INVALID_REQUEST", "max_tokens"),
    ("max_tokens zero", "POST", EX, ex(max_tokens=0), None, 400, "INVALID_REQUEST", "max_tokens"),
    ("max_tokens huge", "POST", EX, ex(max_tokens=2**62), None, 400, "INVALID_REQUEST", "max_tokens"),
    ("max_tokens fraction", "POST", EX, ex(max_tokens=2.5), None, 400, "INVALID_REQUEST", "max_tokens"),
    ("max_tokens string", "POST", EX, ex(max_tokens="2"), None, 400, "INVALID_REQUEST", "max_tokens"),
    ("temperature negative", "POST", EX, ex(temperature=-0.1), None, 400, "INVALID_REQUEST", "temperature"),
    ("temperature huge", "POST", EX, ex(temperature=1e300), None, 400, "INVALID_REQUEST", "temperature"),
    ("temperature string", "POST", EX, ex(temperature="hot"), None, 400, "INVALID_REQUEST", "temperature"),
    ("top_p zero", "POST", EX, ex(top_p=0), None, 400, "INVALID_REQUEST", "top_p"),
    ("top_p negative", "POST", EX, ex(top_p=-1), None, 400, "INVALID_REQUEST", "top_p"),
    ("top_p huge", "POST", EX, ex(top_p=1e20), None, 400, "INVALID_REQUEST", "top_p"),
    ("top_k negative", "POST", EX, ex(top_k=-1), None, 400, "INVALID_REQUEST", "top_k"),
    ("top_k huge", "POST", EX, ex(top_k=2**40), None, 400, "INVALID_REQUEST", "top_k"),
    ("top_k bool", "POST", EX, ex(top_k=True), None, 400, "INVALID_REQUEST", "top_k"),
    ("min_p negative", "POST", EX, ex(min_p=-0.5), None, 400, "INVALID_REQUEST", "min_p"),
    ("min_p huge", "POST", EX, ex(min_p=7), None, 400, "INVALID_REQUEST", "min_p"),
    ("repetition_penalty zero", "POST", EX, ex(repetition_penalty=0), None, 400, "INVALID_REQUEST",
     "repetition_penalty"),
    ("repetition_penalty negative", "POST", EX, ex(repetition_penalty=-2), None, 400, "INVALID_REQUEST",
     "repetition_penalty"),
    ("repetition_penalty huge", "POST", EX, ex(repetition_penalty=1e9), None, 400, "INVALID_REQUEST",
     "repetition_penalty"),
    ("seed negative", "POST", EX, ex(seed=-1), None, 400, "INVALID_REQUEST", "seed"),
    ("seed fraction", "POST", EX, ex(seed=1.5), None, 400, "INVALID_REQUEST", "seed"),
    ("seed string", "POST", EX, ex(seed="42"), None, 400, "INVALID_REQUEST", "seed"),
    ("stop number", "POST", EX, ex(stop=5), None, 400, "INVALID_REQUEST", "stop"),
    ("stop numbers", "POST", EX, ex(stop=[1, 2]), None, 400, "INVALID_REQUEST", "stop[0]"),
    ("stop empty string", "POST", EX, ex(stop=""), None, 400, "INVALID_REQUEST", "stop"),
    ("stop too many", "POST", EX, ex(stop=[f"s{i}" for i in range(17)]), None, 400, "INVALID_REQUEST", "stop"),
    ("stop too long", "POST", EX, ex(stop=["x" * 300]), None, 400, "INVALID_REQUEST", "stop[0]"),
    ("stop with NUL", "POST", EX, ex(stop=["a\u0000b"]), None, 400, "INVALID_REQUEST", "stop[0]"),
    ("chat not a bool", "POST", EX, ex(chat="yes"), None, 400, "INVALID_REQUEST", "chat"),
    ("ignore_eos not a bool", "POST", CMPL, cm(ignore_eos=1), None, 400, "invalid_request", "ignore_eos"),
    ("system without chat", "POST", EX, ex(system="be brief"), None, 400, "INVALID_REQUEST", "system"),
    ("context exceeded", "POST", EX, ex(max_tokens=4096), None, 400, "CONTEXT_EXCEEDED", "context"),
    # OpenAI: completions
    ("completions prompt missing", "POST", CMPL, j({"model": "tiny"}), None, 400, "invalid_request", "prompt"),
    ("completions two prompts", "POST", CMPL, cm(prompt=["a", "b"]), None, 400, "invalid_request", "prompt"),
    ("completions empty prompt list", "POST", CMPL, cm(prompt=[]), None, 400, "invalid_request", "prompt"),
    ("completions negative id", "POST", CMPL, cm(prompt=[1, -1]), None, 400, "invalid_request", "prompt[1]"),
    ("completions id past the vocabulary", "POST", CMPL, cm(prompt=[1, 10**8]), None, 400, "invalid_request",
     "prompt[1]"),
    ("completions n=2", "POST", CMPL, cm(n=2), None, 400, "invalid_request", "n"),
    ("completions n=0", "POST", CMPL, cm(n=0), None, 400, "invalid_request", "n"),
    ("completions best_of", "POST", CMPL, cm(best_of=3), None, 400, "invalid_request", "best_of"),
    ("completions echo", "POST", CMPL, cm(echo=True), None, 400, "invalid_request", "echo"),
    ("completions logprobs", "POST", CMPL, cm(logprobs=5), None, 400, "invalid_request", "logprobs"),
    ("completions stream string", "POST", CMPL, cm(stream="yes"), None, 400, "invalid_request", "stream"),
    ("completions stream_options", "POST", CMPL, cm(stream=True, stream_options="x"), None, 400, "invalid_request",
     "stream_options"),
    ("completions max_tokens negative", "POST", CMPL, cm(max_tokens=-5), None, 400, "invalid_request", "max_tokens"),
    ("completions frequency_penalty", "POST", CMPL, cm(frequency_penalty=3), None, 400, "invalid_request",
     "frequency_penalty"),
    ("completions presence_penalty", "POST", CMPL, cm(presence_penalty=-2.5), None, 400, "invalid_request",
     "presence_penalty"),
    ("completions model number", "POST", CMPL, cm(model=7), None, 400, "invalid_request", "model"),
    # OpenAI: chat
    ("chat messages missing", "POST", CHAT, j({"model": "tiny"}), None, 400, "invalid_request", "messages"),
    ("chat messages empty", "POST", CHAT, ch(messages=[]), None, 400, "invalid_request", "messages"),
    ("chat messages string", "POST", CHAT, ch(messages="hi"), None, 400, "invalid_request", "messages"),
    ("chat message not an object", "POST", CHAT, ch(messages=["hi"]), None, 400, "invalid_request", "messages[0]"),
    ("chat role unknown", "POST", CHAT, ch(messages=[{"role": "wizard", "content": "hi"}]), None, 400,
     "invalid_request", "messages[0].role"),
    ("chat role missing", "POST", CHAT, ch(messages=[{"content": "hi"}]), None, 400, "invalid_request",
     "messages[0].role"),
    ("chat content number", "POST", CHAT, ch(messages=[{"role": "user", "content": 5}]), None, 400,
     "invalid_request", "messages[0].content"),
    ("chat content image", "POST", CHAT,
     ch(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), None, 400,
     "invalid_request", "messages[0].content"),
    ("chat n=3", "POST", CHAT, ch(n=3), None, 400, "invalid_request", "n"),
    ("chat logprobs", "POST", CHAT, ch(logprobs=True), None, 400, "invalid_request", "logprobs"),
    ("chat max_completion_tokens", "POST", CHAT, ch(max_completion_tokens=0), None, 400, "invalid_request",
     "max_completion_tokens"),
    ("chat top_p", "POST", CHAT, ch(top_p=1.01), None, 400, "invalid_request", "top_p"),
    ("chat seed huge", "POST", CHAT, ch(seed=-(2**63)), None, 400, "invalid_request", "seed"),
    # /cancel
    ("cancel without job_id", "POST", CANCEL, j({}), None, 400, "INVALID_REQUEST", "job_id"),
    ("cancel job_id number", "POST", CANCEL, j({"job_id": 7}), None, 400, "INVALID_REQUEST", "job_id"),
    # size, auth, routes, methods
    ("body too large", "POST", EX, ex(prompt="x" * (2 * MAX_BODY)), None, 413, "BODY_TOO_LARGE", "body"),
    ("body too large (OpenAI)", "POST", CHAT, ch(messages=[{"role": "user", "content": "x" * (2 * MAX_BODY)}]), None,
     413, "body_too_large", "body"),
    ("no auth", "POST", EX, ex(), {"Authorization": None}, 401, "UNAUTHORIZED", "Bearer"),
    ("wrong key", "POST", EX, ex(), {"Authorization": "Bearer sk-wrong"}, 401, "UNAUTHORIZED", "Bearer"),
    ("key as a prefix", "POST", EX, ex(), {"Authorization": "Bearer " + KEY[:-1]}, 401, "UNAUTHORIZED", "Bearer"),
    ("basic auth", "POST", CHAT, ch(), {"Authorization": "Basic " + KEY}, 401, "invalid_api_key", "Bearer"),
    ("no auth on models", "GET", "/v1/models", b"", {"Authorization": None}, 401, "invalid_api_key", "Bearer"),
    ("unknown route", "GET", "/nope", b"", None, 404, "NOT_FOUND", "/nope"),
    ("unknown OpenAI route", "POST", "/v1/embeddings", j({"input": "x"}), None, 404, "not_found", "/v1/embeddings"),
    ("GET /execute", "GET", EX, b"", None, 405, "METHOD_NOT_ALLOWED", "POST"),
    ("POST /health", "POST", "/health", b"{}", None, 405, "METHOD_NOT_ALLOWED", "GET"),
    ("DELETE chat", "DELETE", CHAT, b"", None, 405, "method_not_allowed", "POST"),
]


@pytest.fixture(scope="module")
def srv(orcd_bin, tiny_model, server_logs):
    s = Server(orcd_bin, tiny_model, "--ctx", "4096", "--max-body", str(MAX_BODY), "--parallel", "2",
               log_dir=server_logs, api_key=KEY)
    yield s
    s.stop()


def test_table_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,method,path,body,headers,status,code,mention", CASES, ids=[c[0] for c in CASES])
def test_bad_request(srv, name, method, path, body, headers, status, code, mention):
    h = srv.headers()
    for k, v in (headers or {}).items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    sock = raw_request(srv.port, method, path, body, {"Content-Type": "application/json", **h})
    raw = read_until(sock, b"}}")  # every error body ends the error object, then the root
    sock.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), f"{name}: {head[:200]!r} {payload[:300]!r}"
    assert b"Content-Type: application/json" in head
    err = json.loads(payload)["error"]
    message = err["message"]
    assert mention in message, f"{name}: expected {mention!r} in {message!r}"
    if path.startswith("/v1/"):  # OpenAI's shape
        assert err["code"] == code and isinstance(err["type"], str) and "param" in err
    else:
        assert err["code"] == code and err["retriable"] is False
    if status == 401:
        assert b"WWW-Authenticate: Bearer" in head
    # the server keeps serving
    assert srv.get("/health").status_code == 200


def test_many_errors_are_all_listed(srv):
    r = srv.post(EX, {"prompt": 5, "max_tokens": -1, "temperature": 9, "top_p": 0, "top_k": -3, "min_p": 2,
                      "repetition_penalty": 0, "seed": -5, "stop": 3, "job_id": 1})
    err = r.json()["error"]
    fields = [e["field"] for e in err["errors"]]
    assert r.status_code == 400
    assert sorted(fields) == sorted(["job_id", "prompt", "max_tokens", "temperature", "top_p", "min_p",
                                     "repetition_penalty", "top_k", "seed", "stop"])
    for f in fields:
        assert f + ":" in err["message"]


def test_unknown_fields_ignored_and_still_serving(srv):
    r = srv.post(CHAT, {"model": "anything", "messages": MSG, "max_tokens": 3, "ignore_eos": True, "user": "u1",
                        "tools": None,
                        "metadata": {"a": [1, {"b": None}]}, "parallel_tool_calls": False,
                        "temperature": None})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 3
    m = srv.metrics()
    assert m['orcd_requests_total{route="execute",outcome="INVALID_REQUEST"}'] >= 40
    srv.wait_idle()

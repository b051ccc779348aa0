"""The harness the server tests share (no tests here): start `orcd serve` on a model with --port 0, find the
port in its log, talk HTTP and server-sent events to it, read /metrics, stop it and check it exited 0 with
no sanitizer report. Tiny random models (tools/gen_model.py) for load and fault tests; the real default model
where the content matters."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")

REPO = Path(__file__).resolve().parents[2]
SAN = os.environ.get("ORCD_SAN") == "1"
SLOW = 4 if SAN else 1  # time limits scale with this under the sanitizers


class Server:
    def __init__(self, orcd_bin, model, *args, log_dir: Path, api_key: str | None = None, env=None):
        self.api_key = api_key
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log_file = open(self.log_path, "wb")
        cmd = [str(orcd_bin), "serve", "-m", str(model), "--port", "0", *map(str, args)]
        if api_key:
            cmd += ["--api-key", api_key]
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.port = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            text = self.log()
            m = re.search(r"listening on http://[^:]+:(\d+)", text)
            if m:
                self.port = int(m.group(1))
            if "ready:" in text:
                break
            if self.proc.poll() is not None:
                if "built without the HTTP server" in text:
                    pytest.skip("this orcd was built without the HTTP server (libmicrohttpd/jansson missing)")
                raise AssertionError(f"orcd serve exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        else:
            self.proc.kill()
            raise AssertionError(f"orcd serve not ready after 180 s:\n{self.log()}")
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def headers(self, extra=None):
        h = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        h.update(extra or {})
        return h

    def get(self, path, **kw):
        return requests.get(self.base + path, headers=self.headers(kw.pop("headers", None)), timeout=60, **kw)

    def post(self, path, body=None, raw: bytes | None = None, **kw):
        data = raw if raw is not None else json.dumps(body).encode()
        return requests.post(self.base + path, data=data, headers=self.headers(kw.pop("headers", None)),
                             timeout=kw.pop("timeout", 300), **kw)

    def events(self, body, path="/execute"):
        """POST and read the whole event stream: [(event, data)]; data parsed as JSON unless [DONE]."""
        r = self.post(path, body, stream=True)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        return list(parse_sse(r.iter_lines()))

    def metrics(self) -> dict:
        r = requests.get(self.base + "/metrics", timeout=30)
        assert r.status_code == 200
        out = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_idle(self, timeout=5.0) -> float:
        """Seconds until no sequence runs and no KV page is held (AssertionError after timeout)."""
        t0 = time.monotonic()
        while True:
            m = self.metrics()
            if m["orcd_requests_running"] == 0 and m["orcd_kv_pages_used"] == 0 and m["orcd_queue_depth"] == 0:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"still busy after {timeout} s: {m}")
            time.sleep(0.01)

    def stop(self, sig=signal.SIGTERM, timeout=60) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"orcd serve did not exit {timeout} s after signal {sig}:\n{self.log()[-4000:]}")
        self.log_file.close()
        text = self.log()
        assert "Sanitizer" not in text and "runtime error" not in text, text[-8000:]
        assert rc == 0, f"exit code {rc}:\n{text[-4000:]}"
        return text


def parse_sse(lines):
    """Server-sent events from an iterator of lines (bytes): (event name or None, data)."""
    event, data = None, []
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if line == "":
            if data:
                payload = "\n".join(data)
                yield event, payload if payload == "[DONE]" else json.loads(payload)
            event, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


def raw_request(port, method, path, body: bytes = b"", headers=None) -> socket.socket:
    """Send a request on a fresh socket and return the socket (the caller reads and closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def read_until(sock, needle: bytes, limit=1 << 20) -> bytes:
    buf = b""
    while needle not in buf and len(buf) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, llama_model) -> Path:
    """A random-weight llama of the 'tiny' shape with SmolLM2's 49k vocabulary (fast, and it rarely ends its
    turn on its own, so that max_tokens decides the length)."""
    out = tmp_path_factory.mktemp("server-models") / "tiny.gguf"
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", "llama", "--shape", "tiny",
                    "--type", "Q8_0", "--vocab", f"gguf:{llama_model}", "--out", str(out), "--threads", "2"],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")

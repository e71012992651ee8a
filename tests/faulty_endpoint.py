"""A deliberately faulty OpenAI-compatible HTTP endpoint for fault injection (not a model stand-in).

Each POST takes the next behaviour from a script: "ok", "500", "429", "400", "malformed", "empty",
"reset" (close the connection without answering) or "slow:<seconds>". When the script runs out, the
``default`` behaviour applies. Requests are counted so tests can assert what was (re)sent.

More modes (fault-injection suite): "hang" (never answer; the client must time out), "auth-echo" (HTTP
401 whose message repeats the bearer token, as some providers do). With ``upstream`` (a real server's
base URL), "ok" forwards the request there and memoises the reply by request body, so two runs through
the same endpoint see identical model output; the Authorization headers received are kept in
``auth_headers``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyEndpoint:
    def __init__(
        self, script: list[str] | None = None, default: str = "ok", reply: str = "A fine answer.", upstream: str | None = None
    ):
        self.upstream = upstream
        self.memo: dict[str, bytes] = {}
        self.auth_headers: list[str] = []
        self.script = deque(script or [])
        self.default = default
        self.reply = reply
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        # Load and health faults: POSTs beyond `capacity` in flight get 429 (counted in `overloaded`); `arrivals`
        # holds the number in flight as each POST arrived; GETs (health checks) answer `health_status`.
        self.capacity: int | None = None
        self.in_flight = 0
        self.arrivals: list[int] = []
        self.overloaded = 0
        self.health_status = 200
        self.health_checks = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                endpoint.health_checks += 1
                if endpoint.health_status != 200:
                    self._send(endpoint.health_status, {"error": {"message": "injected unhealthy"}})
                    return
                self._send(200, {"object": "list", "data": [{"id": "faulty"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with endpoint._lock:
                    endpoint.requests.append(body)
                    endpoint.auth_headers.append(self.headers.get("Authorization", ""))
                    behaviour = endpoint.script.popleft() if endpoint.script else endpoint.default
                if behaviour.startswith("slow:"):
                    time.sleep(float(behaviour.split(":", 1)[1]))
                    behaviour = "ok"
                if behaviour == "hang":
                    time.sleep(3600)  # daemon thread: dies with the server
                    return
                if behaviour == "auth-echo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    self._send(401, {"error": {"message": f"Incorrect API key provided: {token}", "code": "invalid_api_key"}})
                    return
                if behaviour == "ok" and endpoint.upstream:
                    self._send_raw(200, endpoint.forward(body))
                    return
                if behaviour == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                if behaviour in {"500", "429", "400", "503"}:
                    self._send(int(behaviour), {"error": {"message": f"injected {behaviour}"}})
                elif behaviour == "malformed":
                    self._send_raw(200, b'{"choices": [{"message": ')
                elif behaviour == "empty":
                    self._send(200, completion(""))
                else:
                    self._send(200, completion(endpoint.reply))

            do_POST = _counted(do_POST)

            def _send(self, status, payload):
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.faulty = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, body: dict) -> bytes:
        """The upstream server's reply to ``body``, memoised by request body."""
        key = json.dumps(body, sort_keys=True)
        with self._lock:
            cached = self.memo.get(key)
        if cached is None:
            request = urllib.request.Request(
                f"{self.upstream}/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=300) as response:
                cached = response.read()
            with self._lock:
                cached = self.memo.setdefault(key, cached)
        return cached

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FaultyEndpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _counted(do_post):
    """Wrap a handler's do_POST: count requests in flight and answer 429 beyond the endpoint's capacity."""

    def wrapper(handler):
        endpoint = handler.server.faulty
        with endpoint._lock:
            endpoint.in_flight += 1
            endpoint.arrivals.append(endpoint.in_flight)
            over = endpoint.capacity is not None and endpoint.in_flight > endpoint.capacity
            endpoint.overloaded += over
        try:
            if over:
                handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
                handler._send(429, {"error": {"message": "server at capacity"}})
            else:
                do_post(handler)
        finally:
            with endpoint._lock:
                endpoint.in_flight -= 1

    return wrapper


def completion(text: str) -> dict:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "faulty",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }  # fmt: skip

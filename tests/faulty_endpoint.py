"""A deliberately faulty OpenAI-compatible HTTP endpoint for fault injection (not a model stand-in).

Each POST takes the next behaviour from a script: "ok", "500", "429", "400", "malformed", "empty",
"reset" (close the connection without answering) or "slow:<seconds>". When the script runs out, the
``default`` behaviour applies. Requests are counted so tests can assert what was (re)sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyEndpoint:
    def __init__(self, script: list[str] | None = None, default: str = "ok", reply: str = "A fine answer."):
        self.script = deque(script or [])
        self.default = default
        self.reply = reply
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "faulty"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with endpoint._lock:
                    endpoint.requests.append(body)
                    behaviour = endpoint.script.popleft() if endpoint.script else endpoint.default
                if behaviour.startswith("slow:"):
                    time.sleep(float(behaviour.split(":", 1)[1]))
                    behaviour = "ok"
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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FaultyEndpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def completion(text: str) -> dict:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "faulty",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }  # fmt: skip

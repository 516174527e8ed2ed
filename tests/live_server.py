"""A judge's HTTP app served by uvicorn in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request


class InThreadServer:
    """``create_app(judge, **options)`` served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, judge, **options):
        import uvicorn

        from phudge_lightning.serve.app import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = create_app(judge, **{"max_batch_size": 4, "batch_timeout": 0.01, **options})
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def call(self, path: str, body=None, headers: dict | None = None, timeout: float = 60):
        """(status, headers, body: parsed JSON or text) of one request; errors are returned."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, head, text = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, head, text = error.code, error.headers, error.read()
        kind = head.get("Content-Type", "")
        return status, head, json.loads(text) if kind.startswith("application/json") else text.decode()

    def post(self, path: str, body, timeout: float = 120) -> tuple[int, object]:
        """(status, parsed JSON body) of a POST."""
        status, _, answer = self.call(path, body, timeout=timeout)
        return status, answer

"""A loopback HTTP relay in front of a real registry that fails the first N matching requests
in a scripted way (503/429 with or without Retry-After, or a dropped connection), then relays
honestly.  It stands in for a registry having a bad moment, which a real one cannot be made
to have on demand.  Every request is recorded.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import httpx

from .server import LoopbackServer


class FlakyRelay(LoopbackServer):
    def __init__(self, upstream: str, *, match: str, failures: int, how: str, retry_after: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.match, self.failures, self.how, self.retry_after = match, failures, how, retry_after
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status or -1 for dropped)
        self._lock = threading.Lock()
        super().__init__()
        self.start()

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            fail = self.match in h.path and self.failures > 0
            if fail:
                self.failures -= 1
        if fail and self.how == "drop":
            self.requests.append((h.command, h.path, -1))
            h.close_connection = True
            h.connection.close()
            return
        if fail:
            status = int(self.how)
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' if status == 429 else b"busy"
            h.send_response(status)
            if self.retry_after is not None:
                h.send_header("Retry-After", self.retry_after)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            self.requests.append((h.command, h.path, status))
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "range", "authorization")}
        up = httpx.request(h.command, self.upstream + h.path, headers=headers)
        h.send_response(up.status_code)
        for k in ("content-type", "docker-content-digest", "content-range", "www-authenticate", "location"):
            if k in up.headers:
                h.send_header(k, up.headers[k])
        h.send_header("Content-Length", str(len(up.content)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(up.content)
        self.requests.append((h.command, h.path, up.status_code))

    def close(self) -> None:
        self.stop()

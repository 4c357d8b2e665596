"""Helpers shared by tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devpulse import Router, config_from_mapping, make_plugin_manager


def router_with(config: Mapping[str, Any] | None = None, plugins: Sequence[object] = ()) -> Router:
    """A Router over the bundled plugins plus `plugins`, with no installed entry points."""
    cfg = config_from_mapping(config or {})
    pm = make_plugin_manager(cfg, entry_points=False, extra=plugins)
    return Router(cfg, plugin_manager=pm)


@contextmanager
def recording_server(
    answer: Mapping[str, Any],
) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A local HTTP server answering `answer` as JSON to every GET; each request's path and
    Authorization header are recorded. Yields its host:port and the record."""
    seen: list[tuple[str, str | None]] = []
    body = json.dumps(answer).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()

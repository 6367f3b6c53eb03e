"""Serve a sandbox WSGI app on a real socket, in a background thread.

Tests and the demo use this so that every request crosses HTTP exactly as it
would against the vendor: the desk's clients never get an in-process shortcut.
"""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, make_server


class SandboxServer:
    """A threaded werkzeug server around one WSGI app.

    ``port=0`` picks a free port; ``url`` tells which one was taken.
    """

    def __init__(self, wsgi_app, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(host, port, wsgi_app, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"sandbox:{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

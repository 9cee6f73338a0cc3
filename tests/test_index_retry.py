"""The index client asks again after a transient failure (a timeout, a reset, a 5xx), as pip does, and
not after an answer (a refused connection, a 404): a mirror that stalls once must not fail a compile.
A real HTTP server on 127.0.0.1 plays each failure."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stacksync.backends import indexapi
from stacksync.core.errors import IndexUnavailable

PAGE = b'<html><body><a href="../../files/plain_b-1.0-py3-none-any.whl#sha256=' + b"ab" * 32 + \
    b'">plain_b-1.0-py3-none-any.whl</a></body></html>'


class _Server:
    """Answers request i with ``script[i]`` (the last one from then on): ``ok``, ``stall`` (no answer
    until the client gave up), ``reset`` (the connection closed at once) or an HTTP status."""

    def __init__(self, script: list[str]) -> None:
        self.script, self.seen = script, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                what = owner.script[min(owner.seen, len(owner.script) - 1)]
                owner.seen += 1
                if what == "stall":
                    time.sleep(1.5)
                    return
                if what == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                code = 200 if what == "ok" else int(what)
                body = PAGE if code == 200 else b"no"
                self.send_response(code)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Server]]:
    monkeypatch.setenv("STACKSYNC_INDEX_TIMEOUT", "0.5")
    monkeypatch.delenv("PIP_RETRIES", raising=False)
    servers: list[_Server] = []

    class Made(_Server):
        def __init__(self, script: list[str]) -> None:
            super().__init__(script)
            servers.append(self)

    yield Made
    for server in servers:
        server.stop()


@pytest.mark.parametrize("first", ["503", "502", "stall", "reset"])
def test_a_transient_failure_is_asked_again(serve: type[_Server], first: str) -> None:
    server = serve([first, "ok"])
    files = indexapi.project_files(server.url, "plain-b")
    assert [f.filename for f in files] == ["plain_b-1.0-py3-none-any.whl"]
    assert server.seen == 2


def test_retries_end_in_one_line(serve: type[_Server]) -> None:
    server = serve(["503"])
    with pytest.raises(IndexUnavailable) as caught:
        indexapi.project_files(server.url, "plain-b")
    assert server.seen == 1 + indexapi.retries() == 3
    assert "HTTP 503" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("answer", ["404", "401"])
def test_an_answer_is_not_asked_again(serve: type[_Server], answer: str) -> None:
    server = serve([answer, "ok"])
    with pytest.raises(IndexUnavailable):
        indexapi.project_files(server.url, "plain-b")
    assert server.seen == 1


def test_a_refused_connection_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(indexapi.time, "sleep", waits.append)  # a wait comes before each new try
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(IndexUnavailable, match="is unreachable"):
        indexapi.project_files(f"http://127.0.0.1:{port}/simple/", "plain-b")
    assert waits == []


def test_pip_retries_is_honoured() -> None:
    assert indexapi.retries({"PIP_RETRIES": "0"}) == 0
    assert indexapi.retries({"PIP_RETRIES": "7"}) == 7
    assert indexapi.retries({"PIP_RETRIES": "many"}) == indexapi.retries({}) == 2

"""The dev server over HTTP (no browser): sub-path mounting, 404s, reload-script injection, build events,
and surviving a broken build. Live reload in a real browser: tests/browser/test_reader.py."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from site_builder.site.serve import EVENTS_PATH, DevServer
from tests.conftest import FIXTURE_FILES, write_site


def get(server: DevServer, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(server.url).port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    status, headers = response.status, response.headers  # case-insensitive
    body = response.read() if path != EVENTS_PATH else response.fp.readline() + response.fp.readline()
    conn.close()
    return status, headers, body


@pytest.fixture
def started(tmp_path):
    servers = []

    def start(files: dict[str, str]) -> DevServer:
        server = DevServer(write_site(tmp_path / "site", files), port=0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_serves_the_site_under_its_base_path(started):
    server = started(dict(FIXTURE_FILES, **{"site.toml": 'title = "T"\nbase_url = "https://x.github.io/report/"\n'}))
    assert server.url.endswith("/report/")
    status, headers, _ = get(server, "/")
    assert status == 302 and headers["Location"] == "/report/"
    status, headers, body = get(server, "/report/")
    assert status == 200 and b"Welcome." in body
    assert body.count(EVENTS_PATH.encode()) == 1 and body.rstrip().endswith(b"</html>")  # injected before </body>
    assert b"EventSource" not in (server.dist / "index.html").read_bytes()  # dist/ itself is untouched
    status, headers, body = get(server, "/report/no/such/page.html")
    assert status == 404 and b"Page not found" in body
    css = next(server.dist.glob("assets/site-*.css")).name
    status, headers, body = get(server, f"/report/assets/{css}")
    assert status == 200 and headers["Content-Type"] == "text/css" and EVENTS_PATH.encode() not in body
    assert headers["Cache-Control"] == "no-store"


def test_events_report_the_current_build(started):
    server = started(FIXTURE_FILES)
    status, headers, body = get(server, EVENTS_PATH)
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    state = json.loads(body.decode().removeprefix("data: "))
    assert state == {"build": (server.dist / ".build-id").read_text().strip(), "error": ""}


def test_a_broken_build_is_reported_and_the_server_keeps_running(started, capsys):
    files = dict(FIXTURE_FILES)
    files["content/index.md"] = files["content/index.md"].replace("Welcome.", "See \\eqref{eq:nope}.")
    server = started(files)  # the first build fails: no exception, the server runs
    err = capsys.readouterr().err
    assert "error: content/index.md:" in err and "eq:nope" in err
    assert "content/index.md" in server.state.error and server.state.build == ""
    status, _, body = get(server, "/index.html")
    assert status == 404 and b"The first build failed" in body and EVENTS_PATH.encode() in body
    # fixed: the next build succeeds, the error clears and the build id is announced
    (server.root / "content" / "index.md").write_text(FIXTURE_FILES["content/index.md"])
    assert server.rebuild()
    assert server.state.error == "" and server.state.build == (server.dist / ".build-id").read_text().strip()
    status, _, body = get(server, "/index.html")
    assert status == 200 and b"Welcome." in body


# --- hostile requests (issue 19) ------------------------------------------------------------------


def raw_request(server: DevServer, target: str) -> bytes:
    """Send a request line as given (http.client would refuse some) and return the whole answer."""
    import socket

    with socket.create_connection(("127.0.0.1", urlsplit(server.url).port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("target", ["/%00", "/index.html%00.html", "/assets/%00/x.css", "/" + "a" * 60_000, "/" + "a/" * 30_000 + "x.html"])
def test_hostile_request_paths_get_an_http_answer(started, capfd, target):
    server = started(FIXTURE_FILES)
    answer = raw_request(server, target)
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.0 400 Bad path", b"HTTP/1.0 404 Not Found"), answer[:200]
    assert get(server, "/")[0] == 200  # the server still answers
    assert "Traceback" not in capfd.readouterr().err


def test_a_hundred_live_reload_readers_at_once(started):
    import socket
    import time

    server = started(FIXTURE_FILES)
    port = urlsplit(server.url).port
    start = time.perf_counter()
    sockets = []
    try:
        for _ in range(100):  # connect all before reading any: each holds its event stream open
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET {EVENTS_PATH} HTTP/1.0\r\n\r\n".encode())
            sockets.append(sock)
        for sock in sockets:
            assert sock.recv(4096).startswith(b"HTTP/1.0 200")
    finally:
        for sock in sockets:
            sock.close()
    assert time.perf_counter() - start < 10  # a queue of 5 made clients wait for retransmits (1 s, 3 s, ...)
    assert get(server, "/")[0] == 200


def test_a_fifo_among_the_chapters_does_not_block_the_server(started, tmp_path):
    import os

    server = started(FIXTURE_FILES)
    os.mkfifo(server.root / "content" / "x.md")
    assert server.rebuild() is False  # an error, not a read that never returns
    assert "content/x.md" in server.state.error and "not a regular file" in server.state.error
    assert get(server, "/")[0] == 200  # still serving the last good build

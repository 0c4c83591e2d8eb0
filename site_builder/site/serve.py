"""`python -m site_builder serve`: build, serve dist/ on localhost, rebuild on change, reload the page.

- The site is served under the path of its base URL (site.toml's `base_url`, e.g. /lejepa-report/), as
  GitHub Pages will serve it; `/` redirects there and a missing page gets 404.html with status 404.
- content/, exports/, templates/ and site.toml are watched (watchfiles). A change runs the normal build,
  which re-renders only what its caches do not already hold (KaTeX formulas, social cards) and swaps
  dist/ atomically, so the server never serves a half-written site.
- Every HTML response gets a small script injected (dist/ itself is never changed) that listens to
  server-sent events: a new build reloads the page; a failed build shows its error over the page,
  and in the terminal, while the server keeps serving the last good build.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import threading
import traceback
from pathlib import Path
from urllib.parse import unquote, urlsplit

from site_builder.errors import UserError
from site_builder.site.fingerprint import BUILD_ID_FILE

EVENTS_PATH = "/__site_builder/events"

RELOAD_SCRIPT = """<script>/* injected by `site_builder serve`: live reload and build errors */
(function () {
  var first = null, events = new EventSource("%s");
  events.onmessage = function (message) {
    var state = JSON.parse(message.data), box = document.getElementById("serve-error");
    if (first === null) first = state.build;
    if (state.build !== first) { location.reload(); return; }
    if (box) box.remove();
    if (state.error) {
      box = document.createElement("div");
      box.id = "serve-error"; box.setAttribute("role", "alert");
      box.style.cssText = "position:fixed;left:1rem;right:1rem;bottom:1rem;z-index:1000;max-height:50vh;overflow:auto;" +
        "padding:1rem 1.2rem;background:#3b0d0c;color:#ffdad6;border:2px solid #ff8a80;border-radius:6px;" +
        "font:14px/1.5 ui-monospace,monospace;white-space:pre-wrap;box-shadow:0 8px 30px rgba(0,0,0,.4)";
      box.textContent = "Build failed (the page shows the last good build):\\n\\n" + state.error;
      document.body.appendChild(box);
    }
  };
})();
</script>
""" % EVENTS_PATH

ERROR_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Build failed</title></head>
<body><h1>No site yet</h1><p>The first build failed; fix the error and this page reloads.</p></body></html>"""


class BuildState:
    """The last build's id (dist/.build-id) and error, shared by the watcher and the event streams."""

    def __init__(self):
        self.changed = threading.Condition()
        self.build = ""
        self.error = ""
        self.version = 0

    def set(self, build: str, error: str) -> None:
        with self.changed:
            self.build, self.error = build, error
            self.version += 1
            self.changed.notify_all()

    def message(self) -> bytes:
        return f"data: {json.dumps({'build': self.build, 'error': self.error})}\n\n".encode()


def make_handler(dist: Path, base_path: str, state: BuildState, stop: threading.Event):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(dist), **kwargs)

        def log_message(self, *args):
            pass

        def end_headers(self):
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def do_GET(self):
            path = unquote(urlsplit(self.path).path)
            if path == EVENTS_PATH:
                return self.stream_events()
            if not path.startswith(base_path):
                self.send_response(302)
                self.send_header("Location", base_path)
                return self.end_headers()
            rel = path[len(base_path):] or "index.html"
            file = (dist / rel).resolve()
            if file.is_dir():
                file = file / "index.html"
            inside = file == dist or dist in file.parents
            if inside and file.is_file() and file.suffix != ".html":
                return super().do_GET()
            if inside and file.is_file():
                return self.send_html(200, file.read_bytes())
            missing = dist / "404.html"
            self.send_html(404, missing.read_bytes() if missing.is_file() else ERROR_PAGE.encode())

        def translate_path(self, path):
            rel = unquote(urlsplit(path).path)[len(base_path):]
            return super().translate_path("/" + rel)

        def send_html(self, status: int, html: bytes) -> None:
            at = html.rfind(b"</body>")
            at = len(html) if at < 0 else at
            body = html[:at] + RELOAD_SCRIPT.encode() + html[at:]
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def stream_events(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            seen = -1
            try:
                while not stop.is_set():
                    with state.changed:
                        if state.version == seen:
                            state.changed.wait(timeout=15)
                        fresh, seen = state.version != seen, state.version
                        message = state.message()
                    self.wfile.write(message if fresh else b": keep-alive\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


class DevServer:
    """Build once, serve, then `watch()` until stopped (`close()` from another thread, or Ctrl-C)."""

    def __init__(self, root: str | Path = ".", host: str = "127.0.0.1", port: int = 8000, out: str | Path | None = None):
        from site_builder.site.config import load_config
        from site_builder.site.project import Project

        self.root = Path(root).resolve()
        self.project = Project(self.root, load_config(self.root))
        self.dist = Path(out).resolve() if out else self.root / "dist"
        self.base_path = urlsplit(self.project.config.base_url.rstrip("/") + "/").path or "/"
        self.state = BuildState()
        self.stop = threading.Event()
        handler = make_handler(self.dist, self.base_path, self.state, self.stop)
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        host_name = "localhost" if host in ("0.0.0.0", "") else host
        self.url = f"http://{host_name}:{self.httpd.server_port}{self.base_path}"

    def rebuild(self) -> bool:
        """Build into dist/; on failure report the error (terminal + page) and keep the last good dist/."""
        from site_builder.site.build import build_site

        try:
            result = build_site(self.root, self.dist)
        except UserError as exc:
            error = str(exc)
        except Exception:  # a bug in the builder must not kill the server either
            error = traceback.format_exc()
        else:
            for warning in result.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(result.summary(), flush=True)
            build_id = (self.dist / BUILD_ID_FILE).read_text().strip()
            self.state.set(build_id, "")
            return True
        print(f"error: {error}", file=sys.stderr, flush=True)
        self.state.set(self.state.build, error)
        return False

    def start(self) -> str:
        self.rebuild()
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.url

    def watched(self) -> list[Path]:
        paths = [self.project.content, self.project.exports, *self.project.template_dirs, self.root / "site.toml"]
        return [p for p in paths if p.exists()]

    def watch(self) -> None:
        from watchfiles import watch

        for changes in watch(*self.watched(), stop_event=self.stop, debounce=300, step=50, raise_interrupt=True):
            names = sorted({Path(p).relative_to(self.root).as_posix() if Path(p).is_relative_to(self.root) else p for _, p in changes})
            print(f"changed: {', '.join(names[:5])}{' …' if len(names) > 5 else ''}", flush=True)
            self.rebuild()

    def close(self) -> None:
        self.stop.set()
        with self.state.changed:
            self.state.changed.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build the site, serve it on localhost under its base URL's path, and on every change in content/, "
        "exports/, templates/ or site.toml rebuild and reload the open page. A build error shows in the "
        "page and here; the server keeps serving the last good build."
    )
    parser.add_argument("--root", default=".", help="project folder (default: .)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--out", default=None, help="output folder (default: ROOT/dist)")


def run(args: argparse.Namespace) -> int:
    try:
        server = DevServer(args.root, args.host, args.port, args.out)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; try --port 0") from None
    url = server.start()
    print(f"serving {url}  (Ctrl-C stops)", flush=True)
    try:
        server.watch()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0

"""TeX -> HTML with KaTeX at build time, with a persistent cache.

Two engines give byte-identical HTML (tests/test_math.py): npm's KaTeX in long-lived Node processes
(katex_worker.js; fast, and killable, so a formula that renders too long is an error naming its line),
and pykatex (the same KaTeX inside QuickJS, in this process), used when Node or node_modules/katex is
missing. Pages carry no math JavaScript: only KaTeX's CSS and fonts, which must be the same KaTeX
version as the renderer (see site.assets). The cache is keyed by (TeX, display mode, KaTeX version),
so a rebuild renders only formulas it has never seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import orjson

from site_builder.errors import UserError
from site_builder.site import cache_file

# pykatex does not expose the KaTeX version it embeds; this table does, per pykatex release.
KATEX_IN_PYKATEX = {"0.1.1": "0.16.22"}

MAX_TEX_CHARS = 20_000  # longer formulas are an error before KaTeX sees them (the longest in our chapters: ~300)
RENDER_SECONDS = 5.0  # a formula (or a worker's start) taking longer than this in Node is an error
STARTUP_SECONDS = 20.0  # Node + KaTeX start-up allowance, on top of RENDER_SECONDS for the first formula
FORMULAS_PER_WORKER = 150  # new formulas per extra Node process (each costs ~0.1 s of start-up)
WORKER_JS = Path(__file__).with_name("katex_worker.js")

LABEL_RE = re.compile(r"\\label\{([^{}]*)\}")
LABEL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")


def katex_version() -> str:
    pykatex_version = version("pykatex")
    try:
        return KATEX_IN_PYKATEX[pykatex_version]
    except KeyError:
        raise UserError(
            f"pykatex {pykatex_version} is installed but site_builder only knows which KaTeX is inside "
            f"pykatex {', '.join(KATEX_IN_PYKATEX)}; install a known version (pip install -e .)"
        ) from None


def split_label(tex: str, *, path: str, line: int) -> tuple[str, str | None]:
    """Remove one `\\label{...}` from display TeX (KaTeX has no \\label) and return (tex, label)."""
    labels = LABEL_RE.findall(tex)
    if not labels:
        return tex, None
    if len(labels) > 1:
        raise UserError(f"one \\label per display formula, found {len(labels)}: {', '.join(labels)}", path=path, line=line)
    label = labels[0].strip()
    if not LABEL_NAME_RE.match(label):
        raise UserError(f"bad label '{label}': use letters, digits and : . _ - (for example eq:sigreg)", path=path, line=line)
    return LABEL_RE.sub("", tex), label


@dataclass(frozen=True)
class Formula:
    """One formula as a page asks for it: TeX (with its \\tag if numbered), display mode and where it is."""

    tex: str
    display: bool
    path: str
    line: int


@dataclass(frozen=True)
class Rendered:
    """KaTeX's answer: the HTML, or KaTeX's parse error (the TeX's fault, reported where it is used)."""

    html: str | None
    error: str | None = None


def check_length(formula: Formula) -> None:
    if len(formula.tex) > MAX_TEX_CHARS:
        raise UserError(
            f"formula of {len(formula.tex):,} characters; the limit is {MAX_TEX_CHARS:,}: split it into smaller formulas",
            path=formula.path,
            line=formula.line,
        )


# ---------------------------------------------------------------------------------------------------
# engines


Deliver = Callable[[int, Rendered], None]


class NodeKatex:
    """KaTeX in Node processes (katex_worker.js): requests go in as JSON lines, answers come back in order.
    A worker that does not answer within RENDER_SECONDS is killed and the formula it was on is an error."""

    def __init__(self, node: str, katex_package: Path):
        self.command = [node, str(WORKER_JS), str(katex_package)]
        self.workers: list[subprocess.Popen] = []
        self.greeted: list[bool] = []  # whether each worker has said its first line (its KaTeX version)

    def _start(self, n: int) -> None:
        while len(self.workers) < n:
            self.workers.append(subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            self.greeted.append(False)

    def render(self, formulas: list[Formula], processes: int = 1, deliver: Deliver | None = None) -> list[Rendered]:
        """Answers in the order of `formulas`; `deliver(i, answer)` is also called as each one arrives."""
        if not formulas:
            return []
        self._start(max(len(self.workers), min(processes, 1 + len(formulas) // FORMULAS_PER_WORKER)))
        shares = [formulas[k :: len(self.workers)] for k in range(len(self.workers))]
        try:
            answers = self._exchange(shares, deliver)
        except BaseException:  # a timeout, Ctrl-C or a dead worker: no worker outlives this build
            self.close()
            raise
        out: list[Rendered] = [Rendered(None)] * len(formulas)
        for k, share_answers in enumerate(answers):
            out[k :: len(self.workers)] = share_answers
        return out

    def _exchange(self, shares: list[list[Formula]], deliver: Deliver | None) -> list[list[Rendered]]:
        for worker, share in zip(self.workers, shares):
            requests = b"".join(orjson.dumps([f.tex, f.display]) + b"\n" for f in share)
            threading.Thread(target=_write, args=(worker, requests), daemon=True).start()
        answers: list[list[Rendered]] = [[] for _ in shares]
        buffers = [b"" for _ in shares]
        greeted = self.greeted
        now = time.monotonic()
        deadlines = [now + RENDER_SECONDS + (0 if ready else STARTUP_SECONDS) for ready in greeted]
        fds = {worker.stdout.fileno(): k for k, worker in enumerate(self.workers)}
        waiting = {fd for fd, k in fds.items() if shares[k]}
        while waiting:
            timeout = max(0.0, min(deadlines[fds[fd]] for fd in waiting) - time.monotonic())
            ready, _, _ = select.select(list(waiting), [], [], timeout)
            if not ready:
                k = min((fds[fd] for fd in waiting), key=lambda k: deadlines[k])
                raise self._stuck(shares[k], answers[k], greeted[k])
            for fd in ready:
                k = fds[fd]
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    stderr = self.workers[k].stderr.read().decode(errors="replace").strip().splitlines()
                    raise UserError(f"the KaTeX worker (Node) stopped: {stderr[-1] if stderr else 'no message'}")
                buffers[k] += chunk
                *lines, buffers[k] = buffers[k].split(b"\n")
                for line in lines:
                    reply = orjson.loads(line)
                    if not greeted[k]:
                        greeted[k] = True
                        continue
                    answer = Rendered(reply.get("html"), reply.get("error", "").removeprefix("KaTeX parse error: ") or None)
                    answers[k].append(answer)
                    if deliver:
                        deliver(k + (len(answers[k]) - 1) * len(shares), answer)
                deadlines[k] = time.monotonic() + RENDER_SECONDS
                if len(answers[k]) == len(shares[k]):
                    waiting.discard(fd)
        return answers

    @staticmethod
    def _stuck(share: list[Formula], done: list[Rendered], greeted: bool) -> UserError:
        if not greeted:
            return UserError(f"the KaTeX worker (Node) did not start within {STARTUP_SECONDS + RENDER_SECONDS:.0f} s")
        formula = share[len(done)]
        return UserError(
            f"formula took longer than {RENDER_SECONDS:g} s to render; simplify it or split it",
            path=formula.path,
            line=formula.line,
        )

    def close(self) -> None:
        for worker in list(self.workers):
            worker.kill()
            worker.wait()
            for stream in (worker.stdin, worker.stdout, worker.stderr):
                try:
                    stream.close()
                except OSError:  # stdin of a killed worker: a broken pipe on flush
                    pass
        self.workers, self.greeted = [], []


def _write(worker: subprocess.Popen, data: bytes) -> None:
    try:
        worker.stdin.write(data)
        worker.stdin.flush()
    except (BrokenPipeError, ValueError, OSError):  # the worker was killed (timeout, Ctrl-C): the reader reports it
        pass


class PyKatex:
    """KaTeX inside QuickJS (pykatex), in this process: the fallback when Node's KaTeX is not there."""

    def render(self, formulas: list[Formula], processes: int = 1, deliver: Deliver | None = None) -> list[Rendered]:
        import pykatex

        out = []
        for i, f in enumerate(formulas):
            try:
                out.append(Rendered(pykatex.renderToString(f.tex, displayMode=f.display, throwOnError=True)))
            except pykatex.ParseError as exc:
                out.append(Rendered(None, str(exc)))
            if deliver:
                deliver(i, out[-1])
        return out

    def close(self) -> None:
        pass


def make_engine(katex_package: Path | None):
    """Node's KaTeX when `node` and a whole katex package (its JavaScript, not only the CSS and fonts a
    wheel carries) are there, else pykatex."""
    node = shutil.which("node")
    if node and katex_package and _has_katex_js(katex_package):
        return NodeKatex(node, katex_package)
    return PyKatex()


def _has_katex_js(package: Path) -> bool:
    try:
        main = json.loads((package / "package.json").read_text()).get("main", "index.js")
    except (OSError, ValueError):
        return False
    return (package / main).is_file()


# ---------------------------------------------------------------------------------------------------


class MathRenderer:
    """Renders formulas through KaTeX, remembering every result in `cache_path` (if given).
    `katex_package` is node_modules/katex (None: pykatex only)."""

    def __init__(self, cache_path: Path | None = None, katex_package: Path | None = None):
        self.version = katex_version()
        self.cache_path = cache_path
        self.engine = make_engine(katex_package)
        stored = cache_file.read(cache_path) if cache_path else None
        self.cache: dict[str, str] = orjson.loads(stored) if stored else {}
        self.errors: dict[str, str] = {}  # key -> KaTeX's parse error, raised by render() where the formula is used
        self.pending: set[str] = set()  # keys a background prerender() has not delivered yet
        self.failure: BaseException | None = None  # what stopped the background prerender (timeout, dead worker)
        self.ready = threading.Condition()
        self.thread: threading.Thread | None = None
        self.dirty = False
        self.calls = 0  # formulas asked for
        self.rendered = 0  # formulas actually sent to KaTeX (cache misses)
        self.seconds = 0.0  # time spent waiting for KaTeX

    def _key(self, tex: str, display: bool) -> str:
        return hashlib.sha256(f"{self.version}\0{int(display)}\0{tex}".encode()).hexdigest()

    def prerender(self, formulas: list[Formula], processes: int) -> None:
        """Start rendering every formula not in the cache, in one batch (up to `processes` Node workers),
        in the background: render() waits only for the formula it asks for, so pages render while Node
        works. A formula KaTeX rejects is reported by render(), where the page uses it, with its line."""
        todo: dict[str, Formula] = {}
        for formula in formulas:
            check_length(formula)
            key = self._key(formula.tex, formula.display)
            if key not in self.cache and key not in todo:
                todo[key] = formula
        if not isinstance(self.engine, NodeKatex):  # pykatex holds the GIL: nothing to overlap
            return self._render(todo, processes)
        if todo:
            self.pending = set(todo)
            self.thread = threading.Thread(target=self._render, args=(todo, processes), daemon=True)
            self.thread.start()

    def _render(self, todo: dict[str, Formula], processes: int) -> None:
        if not todo:
            return
        keys = list(todo)
        start = time.perf_counter()
        try:
            self.engine.render(list(todo.values()), processes, lambda i, answer: self._store(keys[i], answer))
        except BaseException as exc:
            with self.ready:
                self.failure = exc
                self.ready.notify_all()
            if threading.current_thread() is not self.thread:
                raise
        finally:
            self.seconds += time.perf_counter() - start

    def _store(self, key: str, answer: Rendered) -> None:
        with self.ready:
            if answer.html is None:
                self.errors[key] = answer.error or "KaTeX gave no HTML"
            else:
                self.cache[key] = answer.html
                self.rendered += 1
                self.dirty = True
            self.pending.discard(key)
            self.ready.notify_all()

    def render(self, tex: str, display: bool, *, path: str, line: int) -> str:
        self.calls += 1
        key = self._key(tex, display)
        if key in self.pending:
            with self.ready:
                while key in self.pending and self.failure is None:
                    self.ready.wait(0.5)
                if self.failure is not None and key in self.pending:
                    raise self.failure
        if key not in self.cache and key not in self.errors:
            formula = Formula(tex, display, path, line)
            check_length(formula)
            self._render({key: formula}, 1)
        html = self.cache.get(key)
        if html is None:
            shown = tex.strip().replace("\n", " ")
            raise UserError(f"TeX error in ${shown[:80]}$: {self.errors[key]}", path=path, line=line)
        return html

    def close(self) -> None:
        """Stop the Node workers (a build calls this whether it succeeded or not)."""
        self.engine.close()
        if self.thread:
            self.thread.join()

    def save(self) -> None:
        if self.cache_path and self.dirty:
            cache_file.write(self.cache_path, orjson.dumps(self.cache, option=orjson.OPT_SORT_KEYS))
            self.dirty = False

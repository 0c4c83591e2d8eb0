"""The fingerprint that lets an unchanged site skip its build.

The fingerprint is a hash over every input: site.toml, content/*.md, templates/, the exports the
previous build read (or looked for), this package's build code, and the options. File contents are
hashed, but only re-hashed when a file's size or mtime changed, so a no-op check costs a few stat calls.
Light imports only: `python -m site_builder build` on an unchanged site returns before loading the
markdown, data and rendering stack.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sysconfig
from pathlib import Path

import orjson

import site_builder
from site_builder.fsutil import write_bytes_atomic
from site_builder.site.project import PROJECT_ROOT, THEME, Project  # noqa: F401  (re-exported)

BUILD_ID_FILE = ".build-id"  # in dist/: the fingerprint of the inputs it was built from


def _third_party_files() -> list[Path]:
    """Files that change when a library that shapes the output changes: the KaTeX engine itself, the
    Plotly JS that is shipped, and the __init__.py holding the markdown and highlighting libraries'
    versions. Located with find_spec, which is ~100x cheaper than importlib.metadata.version."""
    files = []
    for module, rel in (("pykatex", ""), ("plotly", "package_data/plotly.min.js"), ("markdown_it", ""), ("mdit_py_plugins", ""), ("pygments", ""), ("pagefind_bin", "pagefind")):  # pagefind: issue 7
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            origin = Path(spec.origin)
            files.append(origin.parent / rel if rel else origin)
    return files


class Fingerprint:
    """A hash over every input of a build; file contents are re-hashed only when size or mtime changed."""

    def __init__(self, project: Project, options: dict):
        self.project = project
        self.options = options
        self.state_file = project.cache / "state.json"
        try:
            self.state = orjson.loads(self.state_file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            self.state = {}
        self.hashes: dict[str, list] = {}
        libraries = {Path(sysconfig.get_path(k)) for k in ("purelib", "platlib")}
        self.bases = [(lib, "site-packages:") for lib in sorted(libraries)] + [(project.root, ""), (PROJECT_ROOT, "site_builder:")]

    def input_files(self, data_files) -> list[Path]:
        root = self.project.root
        return [*sorted(self.project.content.glob("*.md")), *self.tool_files(), *(root / f for f in sorted(data_files))]

    def tool_files(self) -> list[Path]:
        """Inputs every page depends on besides chapters and data: site.toml, templates, build code, libraries."""
        root = self.project.root
        files = [root / "site.toml"]
        for folder in self.project.template_dirs:
            files += sorted(p for p in folder.rglob("*") if p.is_file())
        code = Path(site_builder.__file__).parent
        for package in ("site", "content", "charts"):
            files += sorted((code / package).glob("*.py")) + sorted((code / package).glob("*.js"))
        files += [code / "fsutil.py", code / "errors.py"]
        for package in ("katex", "plotly.js-cartesian-dist-min"):
            files += [base / "node_modules" / package / "package.json" for base in (root, PROJECT_ROOT)]
        files.append(THEME / "vendor" / "katex" / "package.json")
        files += _third_party_files()
        return files

    def tool_key(self) -> str:
        """A hash over the options and tool_files(): part of every page's render-cache key."""
        h = hashlib.sha256(orjson.dumps(self.options, option=orjson.OPT_SORT_KEYS))
        for path in self.tool_files():
            h.update(f"{self._name(path)}\0{self.file_hash(path)}\n".encode())
        return h.hexdigest()

    def file_hash(self, path: Path) -> str:
        key = str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            return "absent"
        old = self.state.get("hashes", {}).get(key)
        if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            digest = old[2]
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digest = h.hexdigest()
        self.hashes[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def compute(self, data_files) -> str:
        h = hashlib.sha256(orjson.dumps(self.options, option=orjson.OPT_SORT_KEYS))
        for path in self.input_files(data_files):
            h.update(f"{self._name(path)}\0{self.file_hash(path)}\n".encode())
        return h.hexdigest()

    def _name(self, path: Path) -> str:
        """Paths relative to site-packages, the site or this project, so the key (and dist/.build-id)
        is the same in every checkout."""
        for base, prefix in self.bases:
            if path.is_relative_to(base):
                return prefix + path.relative_to(base).as_posix()
        return path.as_posix()

    def up_to_date(self, out: Path) -> bool:
        previous = self.state.get("key")
        if not previous or not (out / BUILD_ID_FILE).exists():
            return False
        if (out / BUILD_ID_FILE).read_text().strip() != previous:
            return False
        return self.compute(self.state.get("data_files", [])) == previous

    def save(self, key: str, data_files) -> None:
        self.state = {"key": key, "data_files": sorted(data_files), "hashes": self.hashes}
        write_bytes_atomic(self.state_file, orjson.dumps(self.state, option=orjson.OPT_SORT_KEYS))

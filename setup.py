"""Packaging hook: KaTeX's CSS and woff2 fonts travel inside the wheel, so `pip install` needs no Node.

When the wheel is built, npm installs the KaTeX version package.json pins (the one pykatex renders with)
unless node_modules/ already holds it, and its katex.min.css, woff2 fonts and package.json are copied to
site_builder/theme/vendor/katex/ in the build tree. Nothing third-party is committed. The Plotly bundle
needs no step here: it comes from the `plotly` package on PyPI, a dependency.
"""

import json
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def katex_package() -> Path:
    """node_modules/katex at the version package.json pins, running `npm ci` if it is missing or differs."""
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]["katex"]
    package = HERE / "node_modules" / "katex"
    manifest = package / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != wanted:
        if shutil.which("npm") is None:
            raise SystemExit(f"building site_builder needs npm to fetch KaTeX {wanted} (or node_modules/katex at that version)")
        subprocess.run(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    return package


class BuildPyWithKatex(build_py):
    def run(self):
        super().run()
        source = katex_package()
        target = Path(self.build_lib) / "site_builder" / "theme" / "vendor" / "katex"
        shutil.rmtree(target, ignore_errors=True)
        (target / "dist" / "fonts").mkdir(parents=True)
        shutil.copy2(source / "package.json", target / "package.json")
        shutil.copy2(source / "LICENSE", target / "LICENSE")
        shutil.copy2(source / "dist" / "katex.min.css", target / "dist" / "katex.min.css")
        for font in sorted((source / "dist" / "fonts").glob("*.woff2")):
            shutil.copy2(font, target / "dist" / "fonts" / font.name)


setup(cmdclass={"build_py": BuildPyWithKatex})

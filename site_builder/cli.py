"""Command line: `python -m site_builder <command>` (also the `site-builder` console script).

Each sub-command lives in its own module exposing `configure(parser)` and `run(args) -> int`. Modules
are imported only when their command runs, so `build` never pays for torch or wandb.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from site_builder import __version__
from site_builder.errors import UserError

# OSErrors reported as one line naming the file (anything else is a bug and keeps its traceback)
USER_FIXABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ELOOP}

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "new": ("site_builder.new", "create a new report folder that builds at once (site.toml, chapters, example data)"),
    "build": ("site_builder.site.command", "build the static site: content/ + exports/ + templates/ -> dist/"),
    "serve": ("site_builder.site.serve", "build, serve on localhost and rebuild + reload on change"),
    "check": ("site_builder.site.check", "build strictly and verify links, anchors, images and chart sources"),
    "fetch": ("site_builder.fetch.command", "export wandb runs (online or offline files) to exports/runs/<run>/"),
    "train": ("site_builder.train.command", "train LeJEPA / InfoNCE ViT-nano on CIFAR-100 (PyTorch)"),
    "analyze": ("site_builder.analyze.command", "checkpoints -> exports/figures/ (PCA, attention, probe, spectra)"),
}


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def make_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="site_builder",
        description="Turn experiment exports and markdown chapters into a static report website.",
    )
    parser.add_argument("--version", action="version", version=f"site_builder {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen command's module is imported (others may need heavy optional packages).
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = make_parser(argv)
        args = parser.parse_args(argv)
        return int(_load(args.command).run(args) or 0)
    except UserError as exc:
        if debug:
            raise
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 1
    except OSError as exc:
        # The file system refused (permission, read-only, disk full, a symlink loop): the user can fix it; name the file.
        if debug or not exc.filename or exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        print(f"error: {exc.filename}: {exc.strerror} (check the folder's permissions and free space)", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if debug or not exc.name or exc.name.startswith("site_builder"):
            raise
        print(
            f"error: this command needs the package '{exc.name}', which is not installed; "
            "see the README for the extra that installs it (for example: pip install -e '.[train]')",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

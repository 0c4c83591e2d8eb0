"""The CLI reports user errors as one line without a traceback, and --debug shows it."""

import subprocess
import sys

import pytest

from site_builder import cli
from site_builder.errors import UserError


def test_user_error_is_one_line(monkeypatch, capsys):
    class Boom:
        @staticmethod
        def configure(parser):
            pass

        @staticmethod
        def run(args):
            raise UserError("unknown column 'x'", path="content/a.md", line=12)

    monkeypatch.setattr(cli, "_load", lambda name: Boom)
    assert cli.main(["build"]) == 1
    err = capsys.readouterr().err
    assert err == "error: content/a.md:12: unknown column 'x'\n"


def test_debug_reraises(monkeypatch):
    class Boom:
        configure = staticmethod(lambda parser: None)

        @staticmethod
        def run(args):
            raise UserError("bad")

    monkeypatch.setattr(cli, "_load", lambda name: Boom)
    with pytest.raises(UserError):
        cli.main(["--debug", "build"])


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "site_builder", "--help"], capture_output=True, text=True, check=True).stdout
    for name in cli.COMMANDS:
        assert name in out

"""How the processes of a command end when they are told to stop (SIGTERM from a service manager or
`kill`, Ctrl-C in a terminal).

The CLI turns SIGTERM into SystemExit, so the same clean-up as for Ctrl-C runs (temporary files and
staged folders are removed, `dist/` stays as it was). Pool workers leave both signals to the parent:
they ignore Ctrl-C and die quietly on SIGTERM, so a stopped build prints no worker tracebacks.
"""

from __future__ import annotations

import signal


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """In the main process: SIGTERM unwinds like Ctrl-C (finally blocks and clean-ups run)."""
    signal.signal(signal.SIGTERM, _terminate)


def quiet_worker() -> None:
    """Pool initializer: the parent handles Ctrl-C and ends the pool with SIGTERM, which kills silently."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

"""How the processes of a command end when they are told to stop (SIGTERM from a service manager or
`kill`, Ctrl-C in a terminal).

The CLI turns SIGTERM into SystemExit, so the same clean-up as for Ctrl-C runs (temporary files and
staged folders are removed, `dist/` stays as it was).
"""

from __future__ import annotations

import signal


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """In the main process: SIGTERM unwinds like Ctrl-C (finally blocks and clean-ups run)."""
    signal.signal(signal.SIGTERM, _terminate)

"""The `detector` command's entry point: for `run`, stop signals are handled from the very
first moment, before the imports of the next seconds (settings, torch), so a SIGTERM during
start-up stops the daemon cleanly instead of killing it with the default action."""

from __future__ import annotations

import signal
import sys
import threading


def main() -> int:
    stop = None
    if sys.argv[1:2] == ["run"]:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    from detector.cli import main as cli_main  # noqa: PLC0415 - after the handlers

    return cli_main(stop=stop)

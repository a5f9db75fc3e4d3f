"""`detector` command line: parse, read the settings, set up logging, run the command's handler.

Where things are: `parser.py` declares every command, flag and help text and names each
command's handler; `commands.py` holds the handlers; `config.py` the flags that override
settings and `detector config`. A settings error exits 2 in one line.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence

import structlog

from detector.cli.config import blame_flag, flag_overrides
from detector.cli.exits import EXIT_FAILURE, EXIT_USAGE
from detector.cli.parser import build_parser
from detector.errors import BrokerUnavailableError, DetectorError, InputFileError, SettingsError
from detector.logs import configure_logging
from detector.settings_env import load_settings

__all__ = ["build_parser", "main"]

# The daemon's commands log to stdout, as containers are expected to; the others keep stdout
# for their results.
LOG_TO_STDOUT = frozenset({"run", "simulate"})

log = structlog.get_logger("detector.cli")


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    """`stop`: set by a signal handler installed earlier (detector.entry), if any."""
    args = build_parser().parse_args(argv)
    args.stop = stop or threading.Event()
    try:
        settings = load_settings(getattr(args, "env_file", None), flag_overrides(args))
    except SettingsError as exc:
        print(f"detector: configuration error: {blame_flag(str(exc), args)}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log.level, settings.log.format,
                      # `config --check` says in one line whether the cluster answered.
                      kafka_level="CRITICAL" if args.command == "config"
                      else settings.log.kafka_level,
                      stream="stdout" if args.command in LOG_TO_STDOUT else "stderr")
    try:
        _check_temp_dir()
        return int(args.handler(args, settings))
    except (SettingsError, BrokerUnavailableError) as exc:
        print(f"detector: configuration error: {blame_flag(str(exc), args)}", file=sys.stderr)
        return EXIT_USAGE
    except InputFileError as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DetectorError as exc:
        log.error("fatal", error=str(exc))
        return EXIT_FAILURE


def _check_temp_dir() -> None:
    """torch's import needs a writable temporary folder; without one it fails deep inside."""
    import tempfile  # noqa: PLC0415

    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise SettingsError(f"TMPDIR: no writable temporary folder (TMPDIR="
                            f"{os.environ.get('TMPDIR', '')!r}, /tmp, /var/tmp, the working "
                            "folder): point TMPDIR at a writable volume, e.g. /var/lib/detector "
                            "in the image") from None

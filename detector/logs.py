"""Logging set-up: every line, ours and the libraries', through one structlog formatter.

structlog events and the standard library's records (kafka-python's above all) go to one
handler whose `structlog.stdlib.ProcessorFormatter` renders both alike: in JSON mode each line
is one JSON object with `timestamp`, `level`, `severity` (the field Google Cloud Logging,
Datadog and Fluent Bit read a line's level from), `logger` and `event`; in console mode a
readable line. The daemon writes to stdout, as containers are expected to; commands whose
stdout is their result (tables, JSON) keep it clean by logging to stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict

# Level name → the severity names cloud log agents understand (LogSeverity in Cloud Logging).
SEVERITY = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "warn": "WARNING",
            "error": "ERROR", "exception": "ERROR", "critical": "CRITICAL"}


def add_severity(_: Any, method_name: str, event_dict: EventDict) -> EventDict:
    level = event_dict.get("level", method_name)
    event_dict["severity"] = SEVERITY.get(str(level).lower(), "DEFAULT")
    return event_dict


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever sys.stdout (or sys.stderr) is when a line is written: a test harness
    may swap and close the streams between two configurations."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, _: TextIO) -> None:
        """The base class assigns it; the current stream is always looked up instead."""


def configure_logging(level: str = "INFO", fmt: str = "auto", *, kafka_level: str = "WARNING",
                      stream: str = "stderr") -> None:
    """Route structlog and the standard library's logging to `stream` ("stdout"/"stderr")."""
    out = getattr(sys, stream)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        add_severity,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer])
    handler = _CurrentStream(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CurrentStream)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Our loggers are filtered by structlog at `level`; every other library logs at WARNING
    # (kafka-python at its own setting) unless `level` is stricter.
    root.setLevel(max(logging.WARNING, getattr(logging, level)))
    logging.getLogger("detector").setLevel(logging.DEBUG)
    logging.getLogger("kafka").setLevel(getattr(logging, kafka_level))

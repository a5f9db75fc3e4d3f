"""Settings on the command line: the Kafka-style flags of `run` and `config`, `detector config`.

Each flag overrides one DETECTOR_* variable, named as Kafka's own tools name it
(`--bootstrap-server`, `--group`, ...); `--env-file` reads DETECTOR_* lines from a dotenv file
under the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from detector.cli.exits import EXIT_OK, EXIT_USAGE
from detector.settings import ENV_PREFIX, LogSettings, Settings, iter_setting_fields
from detector.settings_docs import render_example_env, settings_summary

CHECK_TIMEOUT_S = 3.0  # how long `config --check` waits for the cluster

LOG_LEVELS = get_args(LogSettings.model_fields["level"].annotation)
# flag, metavar, (section, field), what it sets
SETTING_FLAGS = (
    ("--bootstrap-server", "HOST:PORT[,...]", ("kafka", "bootstrap_servers"),
     "Kafka cluster to connect to"),
    ("--group", "ID", ("kafka", "group_id"), "consumer group id"),
    ("--input-topic", "TOPIC", ("kafka", "input_topic"), "topic the events are consumed from"),
    ("--output-topic", "TOPIC", ("kafka", "output_topic"), "topic the alerts are published to"),
    ("--log-level", "LEVEL", ("log", "level"), f"{', '.join(LOG_LEVELS)} (any case)"),
)


def env_name(section: str, field: str) -> str:
    return f"{ENV_PREFIX}{section}_{field}".upper()


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that override settings; each help line names its variable and default."""
    group = parser.add_argument_group("settings (each overrides its DETECTOR_* variable)")
    defaults = {name: default for name, _, default, _ in iter_setting_fields()}
    for flag, metavar, (section, field), text in SETTING_FLAGS:
        shown = defaults[env_name(section, field)] or "none"
        group.add_argument(flag, metavar=metavar, dest=f"set__{section}__{field}",
                           type=str.upper if field == "level" else str,
                           choices=LOG_LEVELS if field == "level" else None,
                           help=f"{text}; overrides {env_name(section, field)} "
                           f"(default: {shown})")
    group.add_argument("--env-file", type=Path, metavar="FILE", default=None,
                       help="read DETECTOR_* settings from this dotenv file (NAME=value lines; "
                       "other names in it are ignored); the environment and these flags "
                       "override it (default: none)")


def flag_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """{section: {field: value}} of the setting flags given on the command line."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        if key.startswith("set__") and value is not None:
            _, section, field = key.split("__")
            out.setdefault(section, {})[field] = value
    return out


def blame_flag(message: str, args: argparse.Namespace) -> str:
    """A settings error about a variable a flag overrode names the flag too."""
    for flag, _, (section, field), _ in SETTING_FLAGS:
        name = env_name(section, field)
        if getattr(args, f"set__{section}__{field}", None) is not None \
                and message.startswith(f"{name}:"):
            return f"{flag} ({name}){message[len(name):]}"
    return message


def config_command(args: argparse.Namespace, settings: Settings) -> int:
    """--example: config.example.env; --check: the effective settings and whether the cluster
    answers; neither: the command's usage."""
    if args.example:
        sys.stdout.write(render_example_env())
        return EXIT_OK
    if not args.check:
        sys.stderr.write(args.usage())
        return EXIT_USAGE
    print(json.dumps(settings_summary(settings), indent=2, default=str))
    k = settings.kafka
    if not k.bootstrap_list:
        print("detector: DETECTOR_KAFKA_BOOTSTRAP_SERVERS is empty: `run` needs it (`demo` "
              "starts its own broker)", file=sys.stderr)
        return EXIT_OK
    from detector.kafka_clients import probe_cluster  # noqa: PLC0415 - kafka only when asked

    brokers, topics = probe_cluster(k, CHECK_TIMEOUT_S)
    present = [t for t in (k.input_topic, k.output_topic, k.dlq_topic) if t and t in topics]
    missing = [t for t in (k.input_topic, k.output_topic, k.dlq_topic) if t and t not in topics]
    print(f"detector: Kafka at {k.bootstrap_servers} answered ({brokers} broker"
          f"{'s' * (brokers != 1)}); topics present: {', '.join(present) or 'none'}"
          + (f"; missing: {', '.join(missing)}"
             + ("" if k.create_topics else " (DETECTOR_KAFKA_CREATE_TOPICS=false)")
             if missing else ""), file=sys.stderr)
    return EXIT_OK

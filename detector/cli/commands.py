"""The handlers of the `detector` commands: (parsed arguments, settings) -> exit code.

Each handler imports what it needs (torch, Kafka, the engine) when it runs, so building the
parser stays light: `detector --help` and `detector config` answer at once.
"""

from __future__ import annotations

import argparse
import sys
import time

import structlog

from detector.bench import commands as corpus_benches
from detector.cli.exits import EXIT_OK, EXIT_USAGE
from detector.errors import InputFileError, SettingsError
from detector.settings import Settings
from detector.settings_docs import settings_summary

log = structlog.get_logger("detector.cli")


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector run`: the daemon, until a stop signal."""
    import torch  # noqa: PLC0415 - keep `detector --help` fast

    from detector.daemon.loop import Daemon  # noqa: PLC0415

    _require_bootstrap(settings)
    torch.set_num_threads(settings.model.threads)
    daemon = Daemon(settings, stop=args.stop)
    daemon.install_signal_handlers()
    log.info("settings", **settings_summary(settings))
    daemon.run()
    return EXIT_OK


def simulate_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector simulate`: synthetic traffic with planned incidents to the input topic."""
    from detector.sim.produce import demo_plan, produce_traffic  # noqa: PLC0415

    _require_bootstrap(settings)
    if settings.kafka.create_topics:
        from detector.kafka_clients import ensure_topics  # noqa: PLC0415

        ensure_topics(settings.kafka, [settings.kafka.input_topic])
    plan = demo_plan(args.streams, args.steps, args.seed, args.incidents)
    for incident in plan.incidents:
        log.info("incident_planned", **incident.to_dict())
    produce_traffic(settings.kafka, plan, args.steps, seed=args.seed, rate=args.rate)
    return EXIT_OK


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector demo`: broker, simulator and daemon together (detector.sim.demo)."""
    from detector.sim.demo import run_demo  # noqa: PLC0415 - Kafka and torch

    return run_demo(args, settings)


def replay_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector replay`: CSV files through the daemon's engine, one record at a time."""
    from tqdm import tqdm  # noqa: PLC0415

    from detector.engine import EngineConfig  # noqa: PLC0415
    from detector.offline.csv_format import check_input, discover  # noqa: PLC0415
    from detector.offline.replay import replay_many  # noqa: PLC0415

    try:
        files = discover(args.inputs)
    except FileNotFoundError as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = EngineConfig.from_settings(settings)
    try:
        for path, _ in files:  # before the progress bar: a bad file is one line
            check_input(path, config.max_metrics)
    except InputFileError as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    with tqdm(total=len(files), unit="file", desc="replay", file=sys.stderr) as bar:
        results = replay_many(files, args.out, config, jobs=max(1, args.jobs),
                              progress=lambda _: bar.update(1))
    for done in results:
        for warning in done.warnings[:20]:
            log.warning("replay_row", detail=warning)
        if len(done.warnings) > 20:
            log.warning("replay_rows_suppressed", file=str(done.source),
                        more=len(done.warnings) - 20)
    rows = sum(r.rows for r in results)
    elapsed = time.monotonic() - started
    print(f"replayed {len(results)} files, {rows} records, {sum(r.alerts for r in results)} "
          f"alerts in {elapsed:.1f}s ({rows / elapsed:.0f} records/s) -> {args.out}")
    return EXIT_OK


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector train` (detector.offline.train_commands)."""
    from detector.offline import train_commands  # noqa: PLC0415 - torch

    return train_commands.train_command(args, settings)


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector evaluate` (detector.offline.train_commands)."""
    from detector.offline import train_commands  # noqa: PLC0415 - torch

    return train_commands.evaluate_command(args, settings)


def bench_nab_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector bench nab`: the NAB corpus under streaming rules, then its report page."""
    from detector.bench.nab.bench import render_table, run_bench  # noqa: PLC0415
    from detector.bench.nab.locate import locate  # noqa: PLC0415
    from detector.engine import EngineConfig  # noqa: PLC0415

    try:
        corpus = locate(args.nab_root)
        print(f"NAB corpus: {corpus.root} ({corpus.source})")
        summary = run_bench(corpus.root, args.out, EngineConfig.from_settings(settings),
                            jobs=max(1, args.jobs), patterns=args.files)
    except (FileNotFoundError, ValueError) as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(render_table(summary))
    print(f"scores: {args.out / 'scores'}; summary: {args.out / 'summary.json'}")
    if not args.no_report:
        from detector.offline.report import write_report  # noqa: PLC0415

        print(f"report: {write_report(args.out)}")
    return EXIT_OK


def bench_corpus_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector bench corpus`, `make-traffic-corpus`, `make-kpi-corpus` (bench.commands)."""
    from detector.engine import EngineConfig  # noqa: PLC0415

    return corpus_benches.run_command(args, EngineConfig.from_settings(settings))


def bench_throughput_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector bench throughput` (detector.bench.throughput)."""
    from detector.bench.throughput import run_throughput_bench  # noqa: PLC0415

    return run_throughput_bench(args, settings)


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    """`detector report`: a replay or bench run as one HTML page."""
    from detector.offline.report import write_report  # noqa: PLC0415

    started = time.monotonic()
    try:
        index = write_report(args.run_dir, args.out, args.labels)
    except (FileNotFoundError, ValueError) as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report in {time.monotonic() - started:.1f}s: {index}")
    return EXIT_OK


def _require_bootstrap(settings: Settings) -> None:
    if not settings.kafka.bootstrap_list:
        raise SettingsError("DETECTOR_KAFKA_BOOTSTRAP_SERVERS: required (host:port of the "
                            "Kafka cluster)")

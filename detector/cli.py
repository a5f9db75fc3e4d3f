"""`detector` command line: run, simulate, demo, config. Settings errors exit 2 in one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from detector import __version__
from detector.bench.commands import COMMANDS as CORPUS_BENCHES
from detector.bench.commands import add_parsers as add_corpus_benches
from detector.bench.commands import add_run_options
from detector.cli_config import add_setting_flags, blame_flag, flag_overrides
from detector.errors import (
    BrokerUnavailableError,
    DetectorError,
    InputFileError,
    SettingsError,
)
from detector.logs import configure_logging
from detector.settings import Settings
from detector.settings_docs import settings_summary
from detector.settings_env import load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# command -> (module, handler(args, settings) -> exit code)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("detector.cli", "_run"),
    "simulate": ("detector.cli", "_simulate"),
    "demo": ("detector.sim.demo", "run_demo"),
    "replay": ("detector.cli", "_replay"),
    "train": ("detector.offline.train_commands", "train_command"),
    "evaluate": ("detector.offline.train_commands", "evaluate_command"),
    "bench": ("detector.cli", "_bench"),
    "report": ("detector.cli", "_report"),
    "config": ("detector.cli_config", "config_command"),
}

# The daemon's commands log to stdout, as containers are expected to; the others keep stdout
# for their results.
LOG_TO_STDOUT = frozenset({"run", "simulate"})

log = structlog.get_logger("detector.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Streaming anomaly detection for network traffic and server metrics. "
        "Every setting is a DETECTOR_* environment variable (see config.example.env).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon: consume events, score them, publish "
                         "alerts", description="Run the daemon against the Kafka cluster "
                         "(--bootstrap-server or DETECTOR_KAFKA_BOOTSTRAP_SERVERS). Every "
                         "setting is a DETECTOR_* variable (`detector config --example` lists "
                         "them); the flags below override the ones Kafka's tools take as "
                         "flags. SIGTERM/SIGINT stop it gracefully (finish batch, flush, commit, "
                         "close).")
    add_setting_flags(run)

    sim = sub.add_parser("simulate", help="produce synthetic network telemetry to the input "
                         "topic", description="Produce realistic traffic (daily/weekly cycles, "
                         "correlated metrics, noise) with injected incidents.")
    _traffic_options(sim, steps=2_000, rate=1_000.0)

    demo = sub.add_parser("demo", help="broker + simulator + daemon in one go; prints alerts",
                          description="Start an embedded broker (unless "
                          "DETECTOR_KAFKA_BOOTSTRAP_SERVERS is set), simulated traffic with "
                          "injected incidents and the daemon; print alerts as they arrive and "
                          "which injected incident each one caught. Ctrl-C stops everything.")
    _traffic_options(demo, steps=480, rate=2_000.0)

    rep = sub.add_parser("replay", help="score CSV files through the daemon's engine",
                         description="Feed CSV files (timestamp + numeric columns; one file = "
                         "one stream, fresh state) one record at a time through the same "
                         "engine and settings as the daemon, and write per file "
                         "timestamp,anomaly_score,alert,raw_score,raw_error under --out at the "
                         "same relative path. A folder INPUT means every CSV under it.")
    rep.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    rep.add_argument("--out", type=Path, required=True, help="output folder")
    rep.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="files replayed in parallel (default: all cores)")

    train = sub.add_parser("train", help="fit the autoencoder on recorded history (CSV files)",
                           description="Keras-style offline training: each epoch is one pass "
                           "of the daemon's online learning over the training part of every "
                           "file (timestamp + numeric columns; one file = one stream); the "
                           "last --validation-split of each file is held out. Early stopping "
                           "keeps the best epoch. The model file is what "
                           "DETECTOR_MODEL_PATH loads.")
    train.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    train.add_argument("--out", type=Path, required=True, help="model file to write (.npz)")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=None,
                       help="windows per gradient step (default DETECTOR_MODEL_TRAIN_BATCH)")
    train.add_argument("--validation-split", type=float, default=0.2)
    train.add_argument("--patience", type=int, default=3,
                       help="epochs without validation improvement before stopping")

    ev = sub.add_parser("evaluate", help="forecast loss on data; NAB score and event-wise "
                        "precision/recall with labels",
                        description="Score CSV files with the engine without learning "
                        "(from DETECTOR_MODEL_PATH or --model) and print the mean forecast "
                        "loss. With --labels (a JSON of relative path -> [[start, end], ...] "
                        "windows, NAB's combined_windows.json format) also print the NAB "
                        "scores and event-wise precision and recall of the alerts.")
    ev.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    ev.add_argument("--model", type=Path, default=None, help="model file (.npz)")
    ev.add_argument("--labels", type=Path, default=None, help="label windows (JSON)")

    bench = sub.add_parser("bench", help="benchmarks that print measured numbers")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    nab = bench_sub.add_parser("nab", help="the Numenta Anomaly Benchmark under streaming rules",
                               description="Replay all 58 NAB files through the daemon's "
                               "engine (fresh state per file, one record at a time, told only "
                               "the probation length), score them with the NAB rules and print "
                               "the three profiles beside the official scoreboard; then "
                               "everything `bench corpus` prints (the shipped threshold beside "
                               "the swept one, a rolling z-score baseline).")
    nab.add_argument("--nab-root", type=Path, default=None, help="NAB folder (data/, labels/, "
                     "config/); default: NAB_ROOT, ../shared/nab beside the checkout, or NAB "
                     "at a pinned commit downloaded into ~/.cache/lstm-detector (checksummed)")
    add_run_options(nab, "the scoreboard")
    add_corpus_benches(bench_sub)

    report = sub.add_parser("report", help="a replay or bench run as one HTML page to "
                            "investigate it", description="Write RUN_DIR (from `replay --out` "
                            "or `bench nab --out`) as one self-contained HTML page (no network "
                            "needed): a sortable, filterable table of streams (events, alerts "
                            "and, with labels, windows caught and missed) and of alerts (time, "
                            "stream, score, severity, metrics ranked by their share with "
                            "expected vs actual); per stream one panel per metric (actual and "
                            "expected) above the anomaly score and threshold, alerts marked on "
                            "the metric behind them, label windows shaded; zoom and hover.")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.add_argument("--labels", type=Path, default=None,
                        help="label windows (JSON of relative path -> [[start, end], ...], NAB's "
                        "combined_windows.json format; default for a NAB bench run: its "
                        "corpus labels)")
    report.add_argument("--out", type=Path, default=None,
                        help="output folder (default RUN_DIR/report)")
    tp = bench_sub.add_parser("throughput", help="end-to-end events/s, event-to-alert "
                              "latency, engine speed, state size and RSS of the daemon",
                              description="Pre-produce N streams of simulated traffic to a "
                              "real broker (an embedded one unless bootstrap servers are given), "
                              "run the daemon on it and print events/s end to end; then the "
                              "event-to-alert latency of probe spikes under half that load, the "
                              "engine's speed without Kafka, state bytes per stream and peak "
                              "RSS. The DETECTOR_* settings apply as for `run`.")
    tp.add_argument("--streams", type=int, default=10_000, help="streams of the load")
    tp.add_argument("--events", type=int, default=None, help="events of the load (rounded "
                    "down to whole steps of every stream; default: every stream twice its "
                    "warm-up, so the second half is steady state)")
    tp.add_argument("--metrics", type=int, default=4, help="metrics per stream (1-4)")
    tp.add_argument("--partitions", type=int, default=1, help="partitions of the input topic "
                    "(the daemon keeps one engine per partition)")
    tp.add_argument("--processes", type=int, default=1, help="daemon processes in the group "
                    "(the bench's own plus `detector run` processes; at most --partitions)")
    tp.add_argument("--latency-s", type=float, default=30.0, help="seconds the probes run")
    tp.add_argument("--seed", type=int, default=7, help="seed of the traffic")
    tp.add_argument("--json", type=Path, default=None, metavar="FILE",
                    help="also write the numbers to FILE as JSON")
    tp.add_argument("--bootstrap-servers", default="", help="Kafka to use (default "
                    "DETECTOR_KAFKA_BOOTSTRAP_SERVERS; an embedded broker when both are empty)")

    cfg = sub.add_parser("config", help="print or check the settings",
                         description="--example prints every setting; --check validates the "
                         "settings `run` would use with the same flags and environment, prints "
                         "them (secrets masked) and asks the Kafka cluster whether it answers "
                         "(exit 2 when not, within a few seconds).")
    group = cfg.add_mutually_exclusive_group()
    group.add_argument("--example", action="store_true",
                       help="print config.example.env (every setting, default and meaning)")
    group.add_argument("--check", action="store_true",
                       help="validate the settings, print them and check the cluster answers")
    add_setting_flags(cfg)
    cfg.set_defaults(usage=cfg.format_help)
    return parser


def _traffic_options(p: argparse.ArgumentParser, *, steps: int, rate: float) -> None:
    p.add_argument("--streams", type=int, default=40, help="streams (hosts/links) to simulate")
    p.add_argument("--steps", type=int, default=steps, help="events per stream (5 simulated "
                   "minutes apart)")
    p.add_argument("--rate", type=float, default=rate, help="events per second; 0 = as fast as "
                   "possible")
    p.add_argument("--incidents", type=int, default=4, help="incidents to inject (spike, "
                   "outage, level shift, relation change, in turn)")
    p.add_argument("--seed", type=int, default=7, help="seed of the traffic and the incidents")


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
    module, name = COMMANDS[args.command]
    # Imported on use: `detector --help` and `config` stay fast, the demo's deps stay optional.
    try:
        _check_temp_dir()
        handler = getattr(importlib.import_module(module), name)
        return int(handler(args, settings))
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


def _require_bootstrap(settings: Settings) -> None:
    if not settings.kafka.bootstrap_list:
        raise SettingsError("DETECTOR_KAFKA_BOOTSTRAP_SERVERS: required (host:port of the "
                            "Kafka cluster)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import torch  # noqa: PLC0415 - keep `detector --help` fast

    from detector.daemon.loop import Daemon  # noqa: PLC0415

    _require_bootstrap(settings)
    torch.set_num_threads(settings.model.threads)
    daemon = Daemon(settings, stop=args.stop)
    daemon.install_signal_handlers()
    log.info("settings", **settings_summary(settings))
    daemon.run()
    return EXIT_OK


def _replay(args: argparse.Namespace, settings: Settings) -> int:
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


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.bench == "throughput":
        from detector.bench.throughput import run_throughput_bench  # noqa: PLC0415

        return run_throughput_bench(args, settings)
    from detector.engine import EngineConfig  # noqa: PLC0415
    if args.bench in CORPUS_BENCHES:
        from detector.bench.commands import run_command  # noqa: PLC0415

        return run_command(args, EngineConfig.from_settings(settings))
    from detector.bench.nab.bench import render_table, run_bench  # noqa: PLC0415
    from detector.bench.nab.locate import locate  # noqa: PLC0415

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


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from detector.offline.report import write_report  # noqa: PLC0415

    started = time.monotonic()
    try:
        index = write_report(args.run_dir, args.out, args.labels)
    except (FileNotFoundError, ValueError) as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report in {time.monotonic() - started:.1f}s: {index}")
    return EXIT_OK


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from detector.sim.produce import demo_plan, produce_traffic  # noqa: PLC0415

    _require_bootstrap(settings)
    if settings.kafka.create_topics:
        from detector.daemon.kafka import ensure_topics  # noqa: PLC0415

        ensure_topics(settings.kafka, [settings.kafka.input_topic])
    plan = demo_plan(args.streams, args.steps, args.seed, args.incidents)
    for incident in plan.incidents:
        log.info("incident_planned", **incident.to_dict())
    produce_traffic(settings.kafka, plan, args.steps, seed=args.seed, rate=args.rate)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

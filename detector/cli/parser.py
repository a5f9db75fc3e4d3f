"""The `detector` command's arguments: every command, its flags and help texts, and its handler.

COMMANDS lists the commands in the order `detector --help` shows them. Each names the function
that runs it (detector.cli.commands, detector.cli.config), which `main` calls as `args.handler`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from detector import __version__
from detector.bench.commands import COMMANDS as CORPUS_BENCHES
from detector.bench.commands import add_parsers as add_corpus_benches
from detector.bench.commands import add_run_options
from detector.cli.commands import (
    bench_corpus_command,
    bench_nab_command,
    bench_throughput_command,
    demo_command,
    evaluate_command,
    replay_command,
    report_command,
    run_command,
    simulate_command,
    train_command,
)
from detector.cli.config import add_setting_flags, config_command
from detector.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name and help texts, the options it takes, the handler that runs it
    (none for a command whose own subcommands name theirs)."""

    name: str
    help: str
    description: str | None
    add_options: Callable[[argparse.ArgumentParser], None]
    handler: Handler | None

    def add_to(self, sub: argparse._SubParsersAction) -> None:
        parser = sub.add_parser(self.name, help=self.help, description=self.description)
        self.add_options(parser)
        if self.handler is not None:
            parser.set_defaults(handler=self.handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Streaming anomaly detection for network traffic and server metrics. "
        "Every setting is a DETECTOR_* environment variable (see config.example.env).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(sub)
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


def _replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="files replayed in parallel (default: all cores)")


def _train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.npz)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per gradient step (default DETECTOR_MODEL_TRAIN_BATCH)")
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=3,
                   help="epochs without validation improvement before stopping")


def _evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    p.add_argument("--model", type=Path, default=None, help="model file (.npz)")
    p.add_argument("--labels", type=Path, default=None, help="label windows (JSON)")


def _bench_options(p: argparse.ArgumentParser) -> None:
    bench_sub = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    NAB.add_to(bench_sub)
    add_corpus_benches(bench_sub)
    for name in CORPUS_BENCHES:
        bench_sub.choices[name].set_defaults(handler=bench_corpus_command)
    THROUGHPUT.add_to(bench_sub)


def _nab_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nab-root", type=Path, default=None, help="NAB folder (data/, labels/, "
                   "config/); default: NAB_ROOT, ../shared/nab beside the checkout, or NAB "
                   "at a pinned commit downloaded into ~/.cache/lstm-detector (checksummed)")
    add_run_options(p, "the scoreboard")


def _throughput_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--streams", type=int, default=10_000, help="streams of the load")
    p.add_argument("--events", type=int, default=None, help="events of the load (rounded "
                   "down to whole steps of every stream; default: every stream twice its "
                   "warm-up, so the second half is steady state)")
    p.add_argument("--metrics", type=int, default=4, help="metrics per stream (1-4)")
    p.add_argument("--partitions", type=int, default=1, help="partitions of the input topic "
                   "(the daemon keeps one engine per partition)")
    p.add_argument("--processes", type=int, default=1, help="daemon processes in the group "
                   "(the bench's own plus `detector run` processes; at most --partitions)")
    p.add_argument("--latency-s", type=float, default=30.0, help="seconds the probes run")
    p.add_argument("--latency-rate", type=float, default=None, metavar="EVENTS_PER_S",
                   help="the load beside the probes (default: half the steady rate); a fixed "
                   "rate compares latency across versions at the same load")
    p.add_argument("--seed", type=int, default=7, help="seed of the traffic")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the numbers to FILE as JSON")
    p.add_argument("--bootstrap-servers", default="", help="Kafka to use (default "
                   "DETECTOR_KAFKA_BOOTSTRAP_SERVERS; an embedded broker when both are empty)")


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--labels", type=Path, default=None,
                   help="label windows (JSON of relative path -> [[start, end], ...], NAB's "
                   "combined_windows.json format; default for a NAB bench run: its "
                   "corpus labels)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default RUN_DIR/report)")


def _config_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--example", action="store_true",
                       help="print config.example.env (every setting, default and meaning)")
    group.add_argument("--check", action="store_true",
                       help="validate the settings, print them and check the cluster answers")
    add_setting_flags(p)
    p.set_defaults(usage=p.format_help)


NAB = Command(
    "nab", "the Numenta Anomaly Benchmark under streaming rules",
    "Replay all 58 NAB files through the daemon's engine (fresh state per file, one record at "
    "a time, told only the probation length), score them with the NAB rules and print the "
    "three profiles beside the official scoreboard; then everything `bench corpus` prints "
    "(the shipped threshold beside the swept one, a rolling z-score baseline).",
    _nab_options, bench_nab_command)

THROUGHPUT = Command(
    "throughput", "end-to-end events/s, event-to-alert latency, engine speed, state size and "
    "RSS of the daemon",
    "Pre-produce N streams of simulated traffic to a real broker (an embedded one unless "
    "bootstrap servers are given), run the daemon on it and print events/s end to end; then "
    "the event-to-alert latency of probe spikes under half that load, the engine's speed "
    "without Kafka, state bytes per stream and peak RSS. The DETECTOR_* settings apply as for "
    "`run`.",
    _throughput_options, bench_throughput_command)

COMMANDS = (
    Command("run", "run the daemon: consume events, score them, publish alerts",
            "Run the daemon against the Kafka cluster (--bootstrap-server or "
            "DETECTOR_KAFKA_BOOTSTRAP_SERVERS). Every setting is a DETECTOR_* variable "
            "(`detector config --example` lists them); the flags below override the ones "
            "Kafka's tools take as flags. SIGTERM/SIGINT stop it gracefully (finish batch, "
            "flush, commit, close).",
            add_setting_flags, run_command),
    Command("simulate", "produce synthetic network telemetry to the input topic",
            "Produce realistic traffic (daily/weekly cycles, correlated metrics, noise) with "
            "injected incidents.",
            partial(_traffic_options, steps=2_000, rate=1_000.0), simulate_command),
    Command("demo", "broker + simulator + daemon in one go; prints alerts",
            "Start an embedded broker (unless DETECTOR_KAFKA_BOOTSTRAP_SERVERS is set), "
            "simulated traffic with injected incidents and the daemon; print alerts as they "
            "arrive and which injected incident each one caught. Ctrl-C stops everything.",
            partial(_traffic_options, steps=480, rate=2_000.0), demo_command),
    Command("replay", "score CSV files through the daemon's engine",
            "Feed CSV files (timestamp + numeric columns; one file = one stream, fresh state) "
            "one record at a time through the same engine and settings as the daemon, and "
            "write per file timestamp,anomaly_score,alert,raw_score,raw_error under --out at "
            "the same relative path. A folder INPUT means every CSV under it.",
            _replay_options, replay_command),
    Command("train", "fit the autoencoder on recorded history (CSV files)",
            "Keras-style offline training: each epoch is one pass of the daemon's online "
            "learning over the training part of every file (timestamp + numeric columns; one "
            "file = one stream); the last --validation-split of each file is held out. Early "
            "stopping keeps the best epoch. The model file is what DETECTOR_MODEL_PATH loads.",
            _train_options, train_command),
    Command("evaluate", "forecast loss on data; NAB score and event-wise precision/recall "
            "with labels",
            "Score CSV files with the engine without learning (from DETECTOR_MODEL_PATH or "
            "--model) and print the mean forecast loss. With --labels (a JSON of relative path "
            "-> [[start, end], ...] windows, NAB's combined_windows.json format) also print "
            "the NAB scores and event-wise precision and recall of the alerts.",
            _evaluate_options, evaluate_command),
    Command("bench", "benchmarks that print measured numbers", None, _bench_options, None),
    Command("report", "a replay or bench run as one HTML page to investigate it",
            "Write RUN_DIR (from `replay --out` or `bench nab --out`) as one self-contained "
            "HTML page (no network needed): a sortable, filterable table of streams (events, "
            "alerts and, with labels, windows caught and missed) and of alerts (time, stream, "
            "score, severity, metrics ranked by their share with expected vs actual); per "
            "stream one panel per metric (actual and expected) above the anomaly score and "
            "threshold, alerts marked on the metric behind them, label windows shaded; zoom "
            "and hover.",
            _report_options, report_command),
    Command("config", "print or check the settings",
            "--example prints every setting; --check validates the settings `run` would use "
            "with the same flags and environment, prints them (secrets masked) and asks the "
            "Kafka cluster whether it answers (exit 2 when not, within a few seconds).",
            _config_options, config_command),
)

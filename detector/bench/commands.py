"""`detector bench corpus`, `bench make-traffic-corpus` and `bench make-kpi-corpus`: their
options and handlers.

Kept light at import (argparse only): `detector --help` builds these parsers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

COMMANDS = ("corpus", "make-traffic-corpus", "make-kpi-corpus")


def add_parsers(bench_sub: argparse._SubParsersAction) -> None:
    """Add the corpus benches to `detector bench`."""
    corpus = bench_sub.add_parser(
        "corpus", help="detection quality on any labelled corpus in NAB's layout",
        description="Replay every file of ROOT (data/**/*.csv, labels/combined_windows.json; "
        "optional probation.json, root_cause.json, config/profiles.json) through the daemon's "
        "engine with the current settings, one stream per file, and print per scoring profile "
        "the score at the shipped threshold (the alerts the daemon would raise) beside the "
        "score with the threshold swept on the labels, windows caught, false alerts per 1,000 "
        "scored rows and per stream-day, HitRate@100%%/150%% against root_cause.json, and the "
        "same for a rolling z-score baseline. Writes OUT/scores/, OUT/summary.json and "
        "OUT/run.json.")
    corpus.add_argument("root", type=Path, metavar="ROOT", help="corpus folder")
    add_run_options(corpus, "the whole corpus's")

    make = bench_sub.add_parser(
        "make-traffic-corpus", help="write simulated network traffic as a labelled corpus",
        description="Simulate network traffic (the simulator of `detector simulate`) with "
        "every incident kind it knows on streams of their own, plus streams without incident, "
        "and write it under OUT in NAB's layout for `detector bench corpus`: one file per "
        "stream, label windows from one hour before an incident to two hours after it is "
        "fully developed, the first days as unlabelled history (probation.json), and "
        "root_cause.json. The same arguments write the same files.")
    make.add_argument("out", type=Path, metavar="OUT", help="folder to write")
    make.add_argument("--per-kind", type=int, default=3, help="streams per incident kind")
    make.add_argument("--clean", type=int, default=8, help="streams without any incident")
    make.add_argument("--days", type=float, default=7.0, help="days each stream covers")
    make.add_argument("--history-days", type=float, default=2.0,
                      help="leading days of unlabelled history (replayed, not scored)")
    make.add_argument("--step-seconds", type=float, default=300.0, help="seconds between rows")
    make.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                      help="incident kinds to inject (default: every kind the simulator knows)")
    make.add_argument("--seed", type=int, default=7, help="seed of the traffic and incidents")

    kpi = bench_sub.add_parser(
        "make-kpi-corpus", help="write simulated cloud-service KPIs as a labelled corpus",
        description="Simulate one metric a minute of a service's KPIs (requests, p99 latency, "
        "crash counts, error percentage; a daily load cycle, quieter weekends) with every "
        "incident kind of each on files of their own, plus files without incident, and write "
        "them under OUT in NAB's layout for `detector bench corpus`: label windows from an "
        "hour before an incident to two hours after it, the first days as unlabelled history "
        "(probation.json). The same arguments write the same files.")
    kpi.add_argument("out", type=Path, metavar="OUT", help="folder to write")
    kpi.add_argument("--per-kind", type=int, default=3, help="files per incident kind")
    kpi.add_argument("--clean", type=int, default=3, help="files without incident, per KPI")
    kpi.add_argument("--days", type=float, default=14.0, help="days each file covers")
    kpi.add_argument("--history-days", type=float, default=5.0,
                     help="leading days of unlabelled history (replayed, not scored)")
    kpi.add_argument("--seed", type=int, default=11, help="seed of the KPIs and incidents")


def add_run_options(bench: argparse.ArgumentParser, whole: str) -> None:
    """--out, --jobs, --files, --no-report: the options of a bench that replays a corpus."""
    bench.add_argument("--out", type=Path, required=True, help="output folder")
    bench.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="files replayed in parallel (default: all cores)")
    bench.add_argument("--files", nargs="+", metavar="PATTERN",
                       help="only these categories or files (globs); the score of a subset is "
                       f"not comparable with {whole}")
    bench.add_argument("--no-report", action="store_true",
                       help="skip the report page (OUT/report/index.html) written after the "
                       "run")


def run_command(args: argparse.Namespace, config: object) -> int:
    """Run `bench corpus` (with an EngineConfig) or write a simulated corpus; exit code."""
    try:
        if args.bench == "corpus":
            return _corpus(args, config)
        if args.bench == "make-kpi-corpus":
            return _make_kpi_corpus(args)
        return _make_traffic_corpus(args)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return 2


def _corpus(args: argparse.Namespace, config: object) -> int:
    from detector.bench.run import run_corpus_bench  # noqa: PLC0415 - heavy imports
    from detector.bench.table import render_corpus_table  # noqa: PLC0415

    summary = run_corpus_bench(args.root, args.out, config, jobs=max(1, args.jobs),
                               patterns=args.files)
    print(render_corpus_table(summary, str(args.root)))
    print(f"scores: {args.out / 'scores'}; summary: {args.out / 'summary.json'}")
    if not args.no_report:
        from detector.offline.report import write_report  # noqa: PLC0415

        print(f"report: {write_report(args.out)}")
    return 0


def _make_traffic_corpus(args: argparse.Namespace) -> int:
    from detector.sim.corpus import TrafficCorpusSpec, write_traffic_corpus  # noqa: PLC0415
    from detector.sim.traffic import INCIDENT_KINDS  # noqa: PLC0415 - numpy on use only

    spec = TrafficCorpusSpec(per_kind=args.per_kind, clean=args.clean, days=args.days,
                             history_days=args.history_days, step_seconds=args.step_seconds,
                             seed=args.seed, kinds=tuple(args.kinds or INCIDENT_KINDS))
    labelled = write_traffic_corpus(args.out, spec)
    kinds = sorted({li.incident.kind for li in labelled})
    print(f"wrote {len(labelled) + spec.clean} streams of {spec.steps} rows "
          f"({spec.history} of history) to {args.out}: {len(labelled)} incidents "
          f"({spec.per_kind} each of {', '.join(kinds)}), {spec.clean} clean")
    return 0


def _make_kpi_corpus(args: argparse.Namespace) -> int:
    from detector.sim.kpi import KpiCorpusSpec, write_kpi_corpus  # noqa: PLC0415 - numpy

    spec = KpiCorpusSpec(per_kind=args.per_kind, clean=args.clean, days=args.days,
                         history_days=args.history_days, seed=args.seed)
    rows = write_kpi_corpus(args.out, spec)
    incidents = sum(1 for r in rows.values() if r)
    print(f"wrote {len(rows)} files of {spec.steps} rows ({spec.history} of history) to "
          f"{args.out}: {incidents} incidents, {len(rows) - incidents} clean")
    return 0

"""`detector bench throughput`: how fast the daemon goes on a real broker, and what it costs.

Four phases, on fresh topics of one broker (an embedded Tansu one unless bootstrap servers are
given), each measured alone:

1. load: N streams x M/N steps of simulated traffic are produced before the daemon starts, by
   a child process (see bench_load), so the consume side is measured alone;
2. throughput: the daemon (service.Daemon, the code `detector run` runs) consumes them in a
   thread of this process: consume -> score -> alerts acknowledged -> commit. events/s is
   timed from its first consumed batch to the broker showing the last offset committed, so
   it includes up to one commit interval of waiting. The steady rate is what the daemon
   sustains once streams train and score: the events past the later of half the load and
   every stream's warm-up, timed by the daemon's own per-batch counter (not by commits);
3. latency: the daemon goes on while child processes produce the same streams at half the
   steady rate plus probe streams with one spike each; the latency of a spike is its alert's
   arrival on the output topic minus the moment the spike was handed to the producer;
4. engine: Engine.process alone on the same events, in this process, without Kafka.

The RSS is this process's peak after phase 3, i.e. the daemon's (the load runs in children).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing
import os
import queue
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import torch
from kafka import KafkaAdminClient
from tqdm import tqdm

from detector.bench.load import LoadSpec, ProbeSpec, paced_load, pre_produce, probe_latency
from detector.bench.memory import http_status, wait_until
from detector.daemon.loop import Daemon
from detector.engine import Engine, EngineConfig, Event
from detector.errors import DetectorError, SettingsError
from detector.kafka_clients import client_config, ensure_topics
from detector.logs import configure_logging
from detector.settings import Settings
from detector.sim.broker import EmbeddedBroker, free_port
from detector.sim.traffic import METRICS
from detector.state.restore import restore_partitions

PROBE_STREAMS = 200
PROBE_STEPS_PER_S = 2.0     # per probe stream: 400 probe events/s in all
LATENCY_LOAD_SHARE = 0.5    # of the measured throughput, while the probes run
LOAD_MARGIN_S = 5.0         # the load runs this much longer than the probes' live steps
CHILD_TIMEOUT_S = 1_800.0
MEMBER_START_TIMEOUT_S = 120.0  # a `detector run` process imports torch before it joins
COMMIT_POLL_S = 0.01
EMBEDDED_FETCH_MAX_WAIT_MS = 10


class _TimedDaemon(Daemon):
    """The daemon, noting when each batch arrived and how many events were done after it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.started_at = time.monotonic()
        self.first_batch_at: float | None = None
        self.done_after_batch: list[tuple[float, int]] = []

    def process_batch(self, batch: dict[Any, list[Any]], *, steady: bool = False) -> None:
        if self.first_batch_at is None:
            self.first_batch_at = time.monotonic()
        super().process_batch(batch, steady=steady)
        self.done_after_batch.append((time.monotonic(), self.telemetry.totals.events))


def run_throughput_bench(args: argparse.Namespace, settings: Settings) -> int:
    _check_args(args, settings)
    warmup = settings.alert.warmup_events
    steps = (args.events // args.streams) if args.events else 2 * warmup
    spec = LoadSpec(args.streams, args.metrics, args.seed)
    configure_logging("WARNING", settings.log.format)  # progress bars, not log lines
    report: dict[str, Any] = {"streams": args.streams, "metrics": args.metrics,
                              "steps": steps, "warmup_steps": warmup,
                              "partitions": args.partitions,
                              "max_poll_records": settings.kafka.max_poll_records,
                              "torch_threads": settings.model.threads}
    with _broker(args.bootstrap_servers or settings.kafka.bootstrap_servers) as (bootstrap,
                                                                                 embedded):
        bench = _bench_settings(settings, bootstrap, args.partitions, embedded)
        k = bench.kafka
        report["fetch_max_wait_ms"] = k.fetch_max_wait_ms
        ensure_topics(k, [k.input_topic, k.output_topic])
        load = _in_child(pre_produce, k, k.input_topic, spec, steps)
        report["produced_events"] = load["events"]
        report["produce_events_per_s"] = load["events"] / load["seconds"]
        torch.set_num_threads(settings.model.threads)
        report["processes"] = args.processes
        daemon = _TimedDaemon(bench)
        with _members(bench, args.processes - 1), _running(daemon) as thread:
            report.update(_throughput(daemon, thread, bench, load,
                                      steady_from=max(load["events"] // 2,
                                                      args.streams * warmup),
                                      alone=args.processes == 1))
            rate = args.latency_rate or LATENCY_LOAD_SHARE * (report["events_per_s_steady"]
                                                              or report["events_per_s"])
            report.update(_latency(daemon, bench, spec, steps, args.latency_s, rate))
        report["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if bench.state.checkpoints:
            report.update(_restore(bench))
    report.update(_engine_only(EngineConfig.from_settings(bench), spec, steps,
                               bench.kafka.max_poll_records))
    _print(report)
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"written to {args.json}")
    return 0


def _check_args(args: argparse.Namespace, settings: Settings) -> None:
    if args.streams < 1 or (args.events is not None and args.events < args.streams):
        raise SettingsError("--events must be at least --streams (one step of every stream)")
    if not 1 <= args.metrics <= min(len(METRICS), settings.model.max_metrics):
        raise SettingsError(f"--metrics: the simulator has {len(METRICS)} metrics and "
                            f"DETECTOR_MODEL_MAX_METRICS={settings.model.max_metrics}")
    rate_ok = args.latency_rate is None or args.latency_rate > 0
    if args.partitions < 1 or args.latency_s <= 0 or not rate_ok:
        raise SettingsError("--partitions, --latency-s and --latency-rate must be positive")
    if not 1 <= args.processes <= args.partitions:
        raise SettingsError("--processes must be between 1 and --partitions (a member "
                            "without a partition has nothing to do)")


@contextlib.contextmanager
def _broker(bootstrap: str) -> Iterator[tuple[str, bool]]:
    """(bootstrap servers, whether they are the embedded broker's)."""
    if bootstrap:
        yield bootstrap, False
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers, True


def _bench_settings(settings: Settings, bootstrap: str, partitions: int, embedded: bool
                    ) -> Settings:
    run = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "bootstrap_servers": bootstrap, "input_topic": f"bench-metrics-{run}",
        "output_topic": f"bench-alerts-{run}", "dlq_topic": "", "group_id": f"bench-{run}",
        "auto_offset_reset": "earliest", "create_topics": True, "topic_partitions": partitions,
        # A short session makes the group join quick (see ../shared/kafka.md).
        "session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_500}
    if embedded:
        # Apache Kafka answers a fetch as soon as a record arrives; the embedded broker holds
        # it to fetch.max.wait.ms, which would measure the broker's wait, not the daemon.
        update["fetch_max_wait_ms"] = EMBEDDED_FETCH_MAX_WAIT_MS
    # The bench reads its daemon's counters itself: no HTTP port to clash with another daemon.
    service = settings.service.model_copy(update={"metrics_port": 0})
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=update),
                                       "service": service})


def _in_child(fn: Callable[..., dict], *args: Any) -> dict:
    return _join(_start(fn, *args))


def _start(fn: Callable[..., dict], *args: Any) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("spawn")  # never fork a process with running threads
    results = ctx.Queue()
    proc = ctx.Process(target=_child_main, args=(fn, args, results), daemon=True)
    proc.start()
    return proc, results


def _join(child: tuple[Any, Any]) -> dict:
    proc, results = child
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        try:
            outcome = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive() or time.monotonic() > deadline:
                proc.kill()
                raise DetectorError(f"bench load process ended without a result "
                                    f"(exit code {proc.exitcode})") from None
    proc.join()
    if "error" in outcome:
        raise DetectorError(f"bench load process failed: {outcome['error']}")
    return outcome


def _child_main(fn: Callable[..., dict], args: tuple, results: Any) -> None:
    # The child imported torch with this module: full collections walking those objects
    # would pause the load ~150 ms every few seconds and then send it in a burst.
    gc.freeze()
    try:
        results.put(fn(*args))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        results.put({"error": repr(exc)})


@contextlib.contextmanager
def _members(settings: Settings, n: int) -> Iterator[None]:
    """`n` more daemons (`detector run` processes) in the bench daemon's group, started
    before it so that all join the group together: the bench goes on once each one serves
    /healthz, which it does a moment before it subscribes (its imports take seconds)."""
    k = settings.kafka
    env = dict(os.environ)  # the caller's DETECTOR_* settings, as for the bench's daemon
    env.update({"DETECTOR_KAFKA_BOOTSTRAP_SERVERS": k.bootstrap_servers,
                "DETECTOR_KAFKA_INPUT_TOPIC": k.input_topic,
                "DETECTOR_KAFKA_OUTPUT_TOPIC": k.output_topic,
                "DETECTOR_KAFKA_DLQ_TOPIC": "", "DETECTOR_KAFKA_GROUP_ID": k.group_id,
                "DETECTOR_KAFKA_SESSION_TIMEOUT_MS": str(k.session_timeout_ms),
                "DETECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": str(k.heartbeat_interval_ms),
                "DETECTOR_KAFKA_FETCH_MAX_WAIT_MS": str(k.fetch_max_wait_ms),
                "DETECTOR_SERVICE_METRICS_BIND": "127.0.0.1", "DETECTOR_LOG_LEVEL": "WARNING",
                "DETECTOR_LOG_FORMAT": "json"})
    ports = [free_port() for _ in range(n)]
    procs = [subprocess.Popen([sys.executable, "-m", "detector", "run"],
                              env={**env, "DETECTOR_SERVICE_METRICS_PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for port in ports]
    try:
        for proc, port in zip(procs, ports, strict=True):
            try:
                wait_until(lambda port=port: http_status(port, "/healthz") == 200, proc,
                           "a bench member to start", MEMBER_START_TIMEOUT_S)
            except RuntimeError as exc:
                tail = proc.stderr.read().decode()[-500:] if proc.poll() is not None else ""
                raise DetectorError(f"{exc} {tail}") from None
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


@contextlib.contextmanager
def _running(daemon: _TimedDaemon) -> Iterator[threading.Thread]:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the bench's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="daemon")
    daemon.started_at = time.monotonic()
    thread.start()
    try:
        yield thread
    finally:
        daemon.request_stop()
        thread.join()
        if failure:  # the cause, rather than what the bench saw of it
            raise DetectorError(f"the daemon failed: {failure[0]!r}") from failure[0]


def _throughput(daemon: _TimedDaemon, thread: threading.Thread, settings: Settings,
                load: dict, steady_from: int, alone: bool) -> dict:
    """With other members in the group (`alone` False) the bench daemon scores only its
    share: the rates then come from the broker's committed offsets alone."""
    total, ends = load["events"], {int(p): o for p, o in load["ends"].items()}
    with tqdm(total=total, unit="ev", desc="consume", unit_scale=True) as bar:
        while alone and daemon.telemetry.totals.events < total:
            if not thread.is_alive():
                raise DetectorError("the daemon stopped before consuming the load")
            time.sleep(0.2)
            bar.update(daemon.telemetry.totals.events - bar.n)
        done_at = _wait_committed(settings, ends)
        bar.update(total - bar.n)
    first = daemon.first_batch_at or done_at
    return {
        "consumed_events": daemon.telemetry.totals.events,
        "events_per_s": total / (done_at - first),
        "events_per_s_steady": (_steady_rate(daemon.done_after_batch, steady_from, total)
                                if alone else None),
        "events_per_s_incl_join": total / (done_at - daemon.started_at),
        "join_s": first - daemon.started_at,
        "consume_s": done_at - first,
        "alerts": daemon.telemetry.totals.alerts,
    }


def _steady_rate(done_after_batch: list[tuple[float, int]], start: int, total: int
                 ) -> float | None:
    """Events/s from the first batch done at or past `start` events to the last batch: None
    when fewer than two batches lie in that window (the load never got past warm-up)."""
    window = [(t, n) for t, n in done_after_batch if start <= n <= total]
    if len(window) < 2 or window[-1][0] <= window[0][0]:
        return None
    (t0, n0), (t1, n1) = window[0], window[-1]
    return (n1 - n0) / (t1 - t0)


def _wait_committed(settings: Settings, ends: dict[int, int]) -> float:
    """The moment the broker shows every partition committed up to its end."""
    k = settings.kafka
    admin = KafkaAdminClient(**client_config(k))
    try:
        while True:
            offsets = admin.list_group_offsets(k.group_id).get(k.group_id, {})
            done = {tp.partition: o.offset for tp, o in offsets.items()}
            if all(done.get(p, -1) >= end for p, end in ends.items()):
                return time.monotonic()
            time.sleep(COMMIT_POLL_S)
    finally:
        admin.close()


def _latency(daemon: _TimedDaemon, settings: Settings, spec: LoadSpec, steps: int,
             duration_s: float, rate: float) -> dict:
    k, cfg = settings.kafka, settings
    probe = ProbeSpec(PROBE_STREAMS, cfg.alert.warmup_events + 2 * cfg.model.window,
                      max(int(duration_s * PROBE_STEPS_PER_S), 8), PROBE_STEPS_PER_S)
    events_before = daemon.telemetry.totals.events
    print(f"latency: {PROBE_STREAMS} probe streams with a spike each, beside the load at "
          f"{rate:.0f} events/s for {duration_s:.0f}s ...")
    # Both start together; the load outlasts the probes' start-up and warm-up on both ends.
    probes = _start(probe_latency, k, k.input_topic, k.output_topic, spec, probe)
    bulk = _in_child(paced_load, k, k.input_topic, spec, steps, rate,
                     probe.live_steps / PROBE_STEPS_PER_S + LOAD_MARGIN_S)
    outcome = _join(probes)
    lat = np.array(outcome["latencies_ms"], dtype=np.float64)
    return {
        "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "latency_max_ms": float(lat.max()) if lat.size else None,
        "latency_spikes": outcome["spikes"], "latency_spikes_alerted": int(lat.size),
        "latency_other_probe_alerts": outcome["other_probe_alerts"],
        "latency_load_events_per_s": bulk["events_per_s"],
        "latency_daemon_events": daemon.telemetry.totals.events - events_before,
    }


def _restore(settings: Settings) -> dict:
    """Restore every partition's state from the changelog the daemon left, as a member taking
    the partitions over would: read, decode, load; timed together."""
    k, config = settings.kafka, EngineConfig.from_settings(settings)
    admin = KafkaAdminClient(**client_config(k))
    try:
        offsets = admin.list_group_offsets(k.group_id).get(k.group_id, {})
    finally:
        admin.close()
    started = time.monotonic()
    restored = restore_partitions(k, config, {tp.partition: o.offset for tp, o in offsets.items()},
                                  timeout_s=settings.state.restore_timeout_s)
    streams = sum(r.engine.streams for r in restored.values())
    seconds = time.monotonic() - started
    return {"restored_streams": streams, "restore_s": seconds,
            "restore_s_per_10k_streams": seconds / streams * 10_000 if streams else None}


def _engine_only(config: EngineConfig, spec: LoadSpec, steps: int, batch_size: int) -> dict:
    """Engine.process on the same events in batches of max_poll_records; only it is timed."""
    engine, generator = Engine(config), spec.generator()
    names = METRICS[: spec.metrics]
    pending: list[Event] = []
    busy = 0.0
    with tqdm(total=spec.streams * steps, unit="ev", desc="engine", unit_scale=True) as bar:
        for step in range(steps):
            pending += [Event(ev["stream"], ev["ts"], {n: ev["metrics"][n] for n in names})
                        for ev in generator.step()]
            while len(pending) >= batch_size or (step == steps - 1 and pending):
                batch, pending = pending[:batch_size], pending[batch_size:]
                started = time.perf_counter()
                engine.process(batch)
                busy += time.perf_counter() - started
                bar.update(len(batch))
    arenas = [lane.arena for lane in engine.lanes.values()]
    return {
        "engine_stream_steps_per_s": spec.streams * steps / busy,
        "engine_train_steps": engine.train_steps,
        "state_bytes_per_stream": max(a.state_bytes_per_stream() for a in arenas),
        "arena_bytes_per_stream": sum(a.nbytes for arena in arenas
                                      for a in arena.arrays.values()) / engine.streams,
    }


def _print(report: dict[str, Any]) -> None:
    def fmt(v: Any) -> str:
        return f"{v:,.1f}" if isinstance(v, float) else str(v)

    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {fmt(value)}")

"""`detector demo`: embedded broker + simulator + daemon, printing alerts as they arrive."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from detector.kafka_clients import client_config, ensure_topics
from detector.settings import Settings
from detector.sim.broker import EmbeddedBroker, free_port
from detector.sim.incidents import incident_for, match_alerts
from detector.sim.produce import demo_plan

CATCH_UP_TIMEOUT_S = 120.0


@contextlib.contextmanager
def _broker_for(settings: Settings) -> Iterator[str]:
    if settings.kafka.bootstrap_list:
        yield settings.kafka.bootstrap_servers
        return
    print("demo: starting an embedded Kafka-protocol broker (Tansu) on loopback ...")
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


def _child(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A group of its own: Ctrl-C reaches the demo only, which then stops children in order.
    return subprocess.Popen([sys.executable, "-m", "detector", *args], env=env,
                            start_new_session=True)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    run_id = uuid.uuid4().hex[:8]
    with _broker_for(settings) as bootstrap:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
        env.update({
            "DETECTOR_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DETECTOR_KAFKA_INPUT_TOPIC": f"demo-metrics-{run_id}",
            "DETECTOR_KAFKA_OUTPUT_TOPIC": f"demo-alerts-{run_id}",
            "DETECTOR_KAFKA_GROUP_ID": f"demo-{run_id}",
            # A short session makes the first group join quick (see ../shared/kafka.md).
            "DETECTOR_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "DETECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": "1500",
            "DETECTOR_LOG_LEVEL": "WARNING",
            "DETECTOR_SERVICE_STATS_INTERVAL_S": "3600",
            # A free port: a daemon already serving 9108 on this host must not stop the demo.
            "DETECTOR_SERVICE_METRICS_PORT": str(free_port()),
            "DETECTOR_SERVICE_METRICS_BIND": "127.0.0.1",
        })
        demo_settings = Settings(kafka=settings.kafka.model_copy(update={
            "bootstrap_servers": bootstrap, "input_topic": env["DETECTOR_KAFKA_INPUT_TOPIC"],
            "output_topic": env["DETECTOR_KAFKA_OUTPUT_TOPIC"]}))
        ensure_topics(demo_settings.kafka, [demo_settings.kafka.input_topic,
                                            demo_settings.kafka.output_topic])
        plan = demo_plan(args.streams, args.steps, args.seed, args.incidents)
        total = args.streams * args.steps
        print(f"demo: {args.streams} streams x {args.steps} steps (5 simulated minutes each) "
              f"= {total} events at {args.rate:.0f}/s; {len(plan.incidents)} injected incidents:")
        for inc in plan.incidents:
            print(f"  - {inc.kind:<11} on {inc.stream} at step {inc.start_index}")
        print(f"demo: the daemon's metrics and probes: http://127.0.0.1:"
              f"{env['DETECTOR_SERVICE_METRICS_PORT']}/metrics (/healthz, /readyz)")
        print("demo: alerts as they arrive (Ctrl-C stops everything):")
        traffic = ["simulate", "--streams", str(args.streams), "--steps", str(args.steps),
                   "--rate", str(args.rate), "--incidents", str(args.incidents),
                   "--seed", str(args.seed)]
        daemon = _child(["run"], env)
        simulator = _child(traffic, env)
        alerts: list[dict] = []
        interrupted = False
        try:
            _follow_alerts(demo_settings, plan, alerts, simulator, daemon, total, env)
        except KeyboardInterrupt:
            interrupted = True
            print("\ndemo: interrupted, stopping ...")
        finally:
            for proc in (simulator, daemon):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (simulator, daemon):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if interrupted:
            print(f"demo: stopped early with {len(alerts)} alerts printed.")
            return 130
        result = match_alerts(plan, alerts)
        print(f"demo: {len(plan.incidents) - len(result.missed)}/{len(plan.incidents)} injected "
              f"incidents alerted; {len(result.unexpected)} other alerts on "
              f"{total - sum(i.end_index - i.start_index + 1 for i in plan.incidents)} "
              "normal events.")
        for inc in result.missed:
            print(f"  missed: {inc.kind} on {inc.stream} at step {inc.start_index}")
        return 0


def _follow_alerts(settings: Settings, plan, alerts: list[dict],  # noqa: ANN001
                   simulator: subprocess.Popen[bytes], daemon: subprocess.Popen[bytes],
                   total: int, env: dict[str, str]) -> None:
    k = settings.kafka
    consumer = KafkaConsumer(**client_config(k), auto_offset_reset="earliest",
                             enable_auto_commit=False)
    partitions = consumer.partitions_for_topic(k.output_topic) or {0}
    consumer.assign([TopicPartition(k.output_topic, p) for p in partitions])
    admin = KafkaAdminClient(**client_config(k))
    done_since: float | None = None
    try:
        while True:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    alert = orjson.loads(rec.value)
                    alerts.append(alert)
                    print(_describe(alert, plan), flush=True)
            if daemon.poll() is not None:
                print(f"demo: the daemon exited with code {daemon.returncode}")
                return
            if simulator.poll() is None:
                continue
            done_since = done_since or time.monotonic()
            group = env["DETECTOR_KAFKA_GROUP_ID"]
            committed = admin.list_group_offsets(group).get(group, {})
            if sum(max(o.offset, 0) for o in committed.values()) >= total:
                return
            if time.monotonic() - done_since > CATCH_UP_TIMEOUT_S:
                print("demo: the daemon did not catch up in time")
                return
    finally:
        consumer.close()
        admin.close()


def _describe(alert: dict, plan) -> str:  # noqa: ANN001
    incident = incident_for(alert, plan)
    verdict = f"<- injected {incident.kind}" if incident else "(no injected incident)"
    top = alert["metrics"][0]  # the metric with the largest share of the surprise
    return (f"ALERT {alert['severity']:<8} score={alert['score']:.3f} {alert['stream']:<16} "
            f"{alert['ts']}  {top['name']}={_fmt(top['actual'])} "
            f"(expected {_fmt(top['expected'])})  {verdict}")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"

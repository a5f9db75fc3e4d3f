"""Measure what a stream costs the daemon in memory: scoring and checkpointing, and restoring.

`python -m detector.bench.memory --streams 50000` starts an embedded broker (or uses
`--bootstrap-servers`), runs `detector run` on a one-partition topic with
DETECTOR_STATE_MAX_STREAMS set to --streams, and reads the daemon's resident memory
(/proc/<pid>/status) three times:

1. ready, with no stream yet: the base (interpreter, torch, Kafka clients, HTTP server);
2. after --streams streams of two events each are scored and checkpointed (every stream's
   state copied, encoded and sent to the changelog): held now, and the peak so far;
3. a second daemon taking the partition over: the peak of restoring it from the changelog.

Per stream it prints (peak - base) / streams and the state's own bytes (one row of every
arena array) beside what `detector.daemon.memory_budget` assumes, which is the largest measured
peak rounded up. The daemon's DETECTOR_* settings apply (e.g. DETECTOR_MODEL_SEASONAL_BUCKETS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from detector.daemon.memory_budget import arena_row_bytes, stream_budget_bytes
from detector.settings_env import load_settings
from detector.sim.broker import EmbeddedBroker, free_port

METRICS = ("bytes_in", "bytes_out", "packets_in", "flows")
READY_TIMEOUT_S = 180.0


def stream_id(i: int) -> str:
    """A 24-character id, typical of host/interface names."""
    return f"edge-{i:07d}.dc1/eth0-x"


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def http_status(port: int, path: str) -> int:
    """The status of GET http://127.0.0.1:port/path; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_until(condition, proc: subprocess.Popen, what: str, timeout_s: float) -> None:
    """Poll `condition` until true; RuntimeError when `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _committed(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return sum(o.offset for o in offsets.values() if o.offset >= 0)
    finally:
        admin.close()


@contextlib.contextmanager
def _daemon(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "detector", "run"],
                                env={**env, "DETECTOR_SERVICE_METRICS_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _produce(bootstrap: str, topic: str, streams: int) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    try:
        for step in range(2):
            for i in range(streams):
                stream = stream_id(i)
                event = {"ts": 1.7e9 + 300 * step,
                         "metrics": {m: 1 + (i + j + step) % 7 for j, m in enumerate(METRICS)}}
                producer.send(topic, key=stream.encode(), value=orjson.dumps(event))
        producer.flush()
    finally:
        producer.close()
    return 2 * streams


def measure(bootstrap: str, streams: int, log: Path) -> dict[str, float]:
    name = f"memory-{os.getpid()}-{int(time.time())}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, -1), NewTopic(name + "-alerts", 1, -1)])
    finally:
        admin.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("DETECTOR_")})
    env.update({"DETECTOR_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "DETECTOR_KAFKA_INPUT_TOPIC": name,
                "DETECTOR_KAFKA_OUTPUT_TOPIC": name + "-alerts",
                "DETECTOR_KAFKA_GROUP_ID": name,
                "DETECTOR_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "DETECTOR_KAFKA_HEARTBEAT_INTERVAL_MS": "1500",
                "DETECTOR_STATE_MAX_STREAMS": str(streams),
                "DETECTOR_STATE_ADMISSION_BURST": str(streams),
                "DETECTOR_LOG_FORMAT": "json"})
    report: dict[str, float] = {"streams": streams}
    with _daemon(env, log) as (proc, port):
        wait_until(lambda: http_status(port, "/readyz") == 200, proc,
                   "the first daemon to be ready", READY_TIMEOUT_S)
        base = _status_bytes(proc.pid, "VmRSS")
        total = _produce(bootstrap, name, streams)
        wait_until(lambda: _committed(bootstrap, name) >= total, proc, "the first checkpoint",
                   READY_TIMEOUT_S + streams / 500)
        held, peak = _status_bytes(proc.pid, "VmRSS"), _status_bytes(proc.pid, "VmHWM")
    with _daemon(env, log) as (proc, port):
        wait_until(lambda: http_status(port, "/readyz") == 200, proc,
                   "the second daemon to restore", READY_TIMEOUT_S + streams / 1_000)
        restore_peak = _status_bytes(proc.pid, "VmHWM")
    per = 1 / streams
    settings = load_settings()
    report.update({
        "base_mb": round(base / 2**20, 1),
        "state_bytes_per_stream": arena_row_bytes(settings),
        "held_bytes_per_stream": round((held - base) * per),
        "scoring_peak_bytes_per_stream": round((peak - base) * per),
        "restore_peak_bytes_per_stream": round((restore_peak - base) * per),
        "budget_bytes_per_stream": stream_budget_bytes(settings),
    })
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detector.bench.memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50_000)
    parser.add_argument("--bootstrap-servers", default="",
                        help="Kafka to use (default: an embedded broker)")
    parser.add_argument("--log", type=Path, default=Path("bench-memory.log"),
                        help="the daemons' log (default ./bench-memory.log)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap_servers or stack.enter_context(
            EmbeddedBroker()).bootstrap_servers
        report = measure(bootstrap, args.streams, args.log)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:<32} {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

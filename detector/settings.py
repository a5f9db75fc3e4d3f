"""The one settings tree: every DETECTOR_* variable is declared, documented and validated here.

Variables are named `DETECTOR_<SECTION>_<FIELD>` with single underscores
(`DETECTOR_ALERT_THRESHOLD`, `DETECTOR_KAFKA_BOOTSTRAP_SERVERS`). They are read by
`detector.settings_env.load_settings`, where a `DETECTOR_*` name that matches no field is an
error: pydantic-settings would silently ignore a misspelling. `detector.settings_docs` renders
them for people (config.example.env, the logged summary).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from detector.units import memory_size_bytes

ENV_PREFIX = "DETECTOR_"
DIRECTIONS = ("up", "down", "both")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _choices_ignore_case(cls, data: Any) -> Any:
        """`debug`, `sasl_ssl`, `Earliest`: a choice is matched whatever its case and stored
        as declared, which is what the Kafka client and the logger expect."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            value = out.get(name)
            if isinstance(value, str) and get_origin(field.annotation) is Literal:
                match = [c for c in get_args(field.annotation) if c.lower() == value.lower()]
                if match:
                    out[name] = match[0]
        return out


class KafkaSettings(_Section):
    bootstrap_servers: str = Field(
        "", description="Comma-separated host:port list of the Kafka cluster. Required by `run`; "
        "`demo` starts an embedded broker when empty.")
    input_topic: str = Field("metrics", min_length=1, description="Topic the metric events are "
                             "consumed from (key = stream id, value = JSON event).")
    output_topic: str = Field("alerts", min_length=1, description="Topic alerts are published to "
                              "(key = stream id, value = JSON alert).")
    dlq_topic: str = Field("", description="Dead-letter topic for records that cannot be "
                           "processed; empty = bad records are only logged and counted.")
    changelog_topic: str = Field("", description="Compacted topic holding the checkpointed "
                                 "state, one partition per input partition; empty = "
                                 "`<group_id>-changelog`. Created when missing.")
    group_instance_id: str = Field("", description="Static group membership id (e.g. the pod "
                                   "name of a StatefulSet): a restarted member gets its "
                                   "partitions back without a rebalance. Empty = dynamic.")
    group_id: str = Field("lstm-detector", min_length=1, description="Consumer group id.")
    client_id: str = Field("lstm-detector", min_length=1, description="Kafka client id.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a group without committed offsets starts.")
    session_timeout_ms: int = Field(10_000, ge=1_000, le=3_600_000, description="Consumer "
                                    "group session timeout (the broker's group.min/max apply).")
    heartbeat_interval_ms: int = Field(3_000, ge=100, le=1_200_000, description="Consumer "
                                       "heartbeat interval; keep below a third of the session "
                                       "timeout.")
    max_poll_records: int = Field(2_000, ge=1, le=100_000, description="Most records taken in "
                                  "one poll, i.e. one scoring batch.")
    max_poll_interval_ms: int = Field(300_000, ge=1_000, description="Longest gap between polls "
                                      "before the member is considered dead.")
    poll_timeout_ms: int = Field(500, ge=1, le=60_000, description="How long one poll waits "
                                 "for records.")
    fetch_max_wait_ms: int = Field(500, ge=0, le=60_000, description="How long the broker may "
                                   "hold a fetch for more data. Apache Kafka answers as soon "
                                   "as a record arrives; a broker that holds the fetch to the "
                                   "end adds up to this much to the event-to-alert latency "
                                   "when the daemon keeps up.")
    request_timeout_ms: int = Field(30_000, ge=1_000, description="Client request timeout.")
    connect_timeout_ms: int = Field(30_000, ge=100, le=600_000, description="How long to try "
                                    "reaching the cluster at start-up before giving up (exit 2).")
    create_topics: bool = Field(False, description="Create the input, output and dead-letter "
                                "topics at start-up when they are missing (the changelog is "
                                "created when missing either way).")
    topic_partitions: int = Field(4, ge=1, le=10_000, description="Partitions of topics created "
                                  "by create_topics.")
    replication_factor: int = Field(-1, ge=-1, le=10, description="Replicas of the topics the "
                                    "daemon creates (the changelog when missing; with "
                                    "create_topics the others); -1 = the broker's "
                                    "default.replication.factor (Kafka 2.4+).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol.")
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "", description="SASL mechanism when security_protocol is SASL_*.")
    sasl_username: str = Field("", description="SASL user name.")
    sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (never logged); "
                                     "or give sasl_password_file.")
    sasl_password_file: str = Field("", description="File holding the SASL password, e.g. a "
                                    "mounted Kubernetes Secret; read once at start-up, one "
                                    "trailing newline ignored.")
    ssl_cafile: str = Field("", description="CA bundle (PEM) to verify the brokers; empty = "
                            "the system CA bundle.")
    ssl_certfile: str = Field("", description="Client certificate (PEM) for mutual TLS.")
    ssl_keyfile: str = Field("", description="Client private key (PEM) for mutual TLS.")
    ssl_password: SecretStr = Field(SecretStr(""), description="Password of the client key "
                                    "(never logged); or give ssl_password_file.")
    ssl_password_file: str = Field("", description="File holding the password of the client "
                                   "key; read like sasl_password_file.")

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for secret in ("sasl_password", "ssl_password"):
            path = data.get(f"{secret}_file")
            if not path:
                continue
            if data.get(secret):
                raise ValueError(f"{secret}_file: give either {secret} or {secret}_file, "
                                 "not both")
            data = {**data, secret: _read_secret(f"{secret}_file", path)}
        return data

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap_list(cls, value: str) -> str:
        for entry in [e.strip() for e in value.split(",") if e.strip()]:
            problem = bootstrap_problem(entry)
            if problem:
                raise ValueError(f"{entry!r} {problem}; expected host:port[,host:port...]")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> KafkaSettings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be lower than session_timeout_ms "
                             f"({self.session_timeout_ms})")
        if self.security_protocol.startswith("SASL"):
            for needed in ("sasl_mechanism", "sasl_username", "sasl_password"):
                value = getattr(self, needed)
                if not (value.get_secret_value() if isinstance(value, SecretStr) else value):
                    raise ValueError(f"{needed} is required with security_protocol "
                                     f"{self.security_protocol}")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not (Path(path).is_file() and os.access(path, os.R_OK)):
                raise ValueError(f"{name}: {path!r} is not a readable file")
        if self.replication_factor == 0:
            raise ValueError("replication_factor: must be -1 (the broker's default) or at "
                             "least 1")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ssl_certfile is required with ssl_keyfile (mutual TLS needs "
                             "the client certificate)")
        return self

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.group_id}-changelog"

    @property
    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]


_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.%a-z]+\]")


def bootstrap_problem(entry: str) -> str:
    """What is wrong with one bootstrap address (host:port, an IPv6 host in brackets), or ''."""
    host, colon, port = entry.rpartition(":")
    if not colon or not host:
        return "has no port" if not colon else "has no host"
    if ":" in host and not host.startswith("["):
        return f"has an IPv6 host without brackets (write [{host}]:{port})"
    if not _HOST.fullmatch(host):
        return f"has an invalid host {host!r}"
    if not port.isdigit() or not 1 <= int(port) <= 65_535:
        return f"has a port outside 1-65535 ({port!r})"
    return ""


def _read_secret(name: str, path: str) -> str:
    """A secret mounted as a file; the message never quotes its content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ValueError(f"{name}: cannot read {path!r} ({reason})") from None
    return text.removesuffix("\n").removesuffix("\r")


class ModelSettings(_Section):
    path: str = Field("", description="Model file saved by `detector train` to start from; "
                      "empty = start untrained and learn online.")
    hidden_size: int = Field(32, ge=4, le=512, description="LSTM hidden units.")
    window: int = Field(8, ge=2, le=128, description="Events per window the decoder "
                        "reconstructs from the carried state (also the BPTT length).")
    max_metrics: int = Field(64, ge=1, le=64, description="Most metrics one stream may "
                             "carry. Streams live in lanes of 4, 8, 16, 32 and 64 metrics (up to "
                             "this), each with its own model: a narrow stream costs a "
                             "narrow row.")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="Adam learning rate of the "
                                 "online updates.")
    train_batch: int = Field(16, ge=1, le=4_096, description="Windows per online training "
                             "step, at least; a step runs as soon as they are ready. A lane "
                             "of more than train_batch x window streams waits for the "
                             "windows of one round of its streams (streams / window): at "
                             "most one step per round, however many streams share the model.")
    learn: bool = Field(True, description="Keep learning online from the stream.")
    log_transform: bool = Field(True, description="Feed sign(x)*log1p(|x|) to the model: "
                                "traffic counters are multiplicative.")
    normalizer_halflife: float = Field(500.0, gt=1, description="Half-life, in events, of the "
                                       "per-stream running mean and variance.")
    bidirectional: bool = Field(False, description="Also encode the last `window` inputs "
                                "with a bidirectional LSTM (read both ways) for the decoder.")
    seasonal_buckets: int = Field(0, ge=0, le=1_440, description="When > 0, each stream "
                                  "learns its typical step at each of this many times of day "
                                  "(288 = 5 minutes) and the forecast starts from it; costs "
                                  "buckets x metrics x 4 bytes per stream. 0 = off.")
    seed: int = Field(0, ge=0, description="Seed of the weight initialisation.")
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads.")


class AlertSettings(_Section):
    threshold: float = Field(0.7, ge=0.0, le=1.0, description="Score at or above which an "
                             "alert is raised. Score s means an event this unusual happens "
                             "with probability 10^(-7 s) on that stream (its own tail of "
                             "surprises): 0.7 = about 1 in 80,000.")
    critical_threshold: float = Field(0.9, ge=0.0, le=1.0, description="Score at or above which "
                                      "an alert's severity is critical instead of warning.")
    overrides: dict[str, float] = Field(default_factory=dict, description="Per-stream "
                                        "thresholds as JSON, glob pattern → threshold, first "
                                        "match wins, e.g. {\"core-*\": 0.7}.")
    cooldown_events: int = Field(30, ge=0, le=1_000_000, description="Events of a stream after "
                                 "a score during which only a higher score is published (and "
                                 "can alert): one incident, one alert.")
    warmup_events: int = Field(64, ge=0, le=1_000_000, description="Events of a new stream "
                               "during which it scores 0 and never alerts.")
    spatial_margin: float = Field(
        0.02, ge=0.0, le=10.0, description="Range rule: the running mean of a value (half-life "
        "spatial_halflife events) beyond the range of that mean so far by more than this "
        "fraction of the range scores 1 (a sustained shift out of the usual band); 0 = the "
        "range rule is off.")
    spatial_value_margin: float = Field(
        0.2, ge=0.0, le=10.0, description="Range rule: a single value beyond the stream's own "
        "range so far by more than this fraction of that range scores 1 (a new extreme); all "
        "margins are x (1 + 0.2 ln D) on a stream of D metrics.")
    spatial_halflife: float = Field(16.0, ge=0.0, le=1_000_000, description="Half-life, in "
                                    "events, of the range rule's running mean; 0 = values only.")
    spatial_warmup_s: float = Field(
        259_200.0, ge=0.0, le=1e9, description="Seconds a stream must span (first to current "
        "event) before the range rule trusts its ranges and the relation evidence how its "
        "metrics move together: a young stream's first busy hours are no incident. 259200 = "
        "three daily cycles.")
    spatial_drift_margin: float = Field(
        0.05, ge=0.0, le=10.0, description="Range rule: the running mean beyond the range it "
        "had settled at (taken in every spatial_halflife events) by more than this fraction of "
        "the range scores 1, once per drift: a mean drifting beyond every level it has held, "
        "however smoothly; 0 = off.")
    spatial_drift_warmup_s: float = Field(
        604_800.0, ge=0.0, le=1e9, description="Seconds a stream must span before the range "
        "rule judges its mean's drift: a first weekend sets lows no weekday reached. 604800 = "
        "a week.")
    level_evidence: bool = Field(True, description="Also score how far each value lies from "
                                 "its stream's running mean, in running standard deviations.")
    relation_evidence: bool = Field(
        True, description="Also score a stream's metrics leaving the way they usually move "
        "together (a Mahalanobis distance of their z-scores). Its state (max_metrics^2 x 4 "
        "bytes per stream) is kept either way.")
    daily_evidence: bool = Field(
        True, description="Also score a metric's trend (15-min minus 2-hour mean) leaving its "
        "usual trend at that hour of day, trusted from its 3rd day seen (a daily pattern moved "
        "by hours); 204 x lane width + 484 bytes per stream.")
    directions: dict[str, str | dict[str, str]] = Field(
        default_factory=dict, description="Which way streams and metrics may alert, as JSON: "
        "stream glob → \"up\", \"down\" or \"both\", or → {metric glob: direction}; "
        "first match wins, unmatched = both, e.g. {\"web-*\": {\"errors\": \"up\"}}.")
    calibration_halflife: float = Field(2_000.0, gt=1, description="Half-life, in events, of "
                                        "the per-stream statistics the score is calibrated "
                                        "against (for its tails of surprises: a week if longer).")

    @model_validator(mode="after")
    def _check_thresholds(self) -> AlertSettings:
        if self.critical_threshold < self.threshold:
            raise ValueError(f"critical_threshold must be >= threshold ({self.threshold})")
        for pattern, value in self.overrides.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"overrides: threshold {value} for {pattern!r} is outside "
                                 "[0, 1]")
        for pattern, rule in self.directions.items():
            for metric, value in (rule.items() if isinstance(rule, dict) else [("", rule)]):
                if value not in DIRECTIONS:
                    where = f"{pattern!r}" + (f", metric {metric!r}" if metric else "")
                    raise ValueError(f"directions: {value!r} for {where} is not one of "
                                     f"{', '.join(DIRECTIONS)}")
        return self


class StateSettings(_Section):
    max_streams: int = Field(100_000, ge=1, le=10_000_000, description="Most streams held at "
                             "once per partition; a new stream beyond it evicts the stream seen "
                             "least recently (its checkpointed state is deleted too).")
    admission_burst: int = Field(0, ge=0, le=10_000_000, description="New streams a partition "
                                 "admits back to back; 0 = max_streams.")
    admission_rate: float = Field(0.1, gt=0, le=1, description="New streams admitted per event "
                                  "once the burst is spent (the allowance refills at this rate, "
                                  "counted in events, not seconds, so a replay admits what the "
                                  "daemon did). Events of streams refused are dead-lettered.")
    checkpoints: bool = Field(True, description="Keep every partition's state (model, streams) "
                              "in the changelog topic and restore it on assignment.")
    restore_timeout_s: float = Field(300.0, gt=0, le=86_400, description="Longest a partition's "
                                     "state restore may take before the daemon gives up "
                                     "(exit 1, so the orchestrator restarts it).")
    initial_capacity: int = Field(1_024, ge=1, le=10_000_000, description="Stream slots "
                                  "preallocated per partition; the arena doubles up to "
                                  "max_streams.")
    max_event_bytes: int = Field(65_536, ge=256, le=16_777_216, description="Larger records "
                                 "are rejected as bad input.")
    max_stream_id_length: int = Field(256, ge=1, le=4_096, description="Longer stream ids are "
                                      "rejected as bad input.")
    max_partitions: int = Field(0, ge=0, le=100_000, description="Most input partitions one "
                                "member is sized to hold (README, Memory); 0 = every partition "
                                "of the input topic, as when it is the only member up.")


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json for production (one JSON object per line, with `severity`), "
        "console for a terminal; auto picks console on a TTY.")
    kafka_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING", description="Level of kafka-python's own log lines (connection losses, "
        "coordinator changes), written in the same format as the daemon's.")


class ServiceSettings(_Section):
    shutdown_timeout_s: float = Field(20.0, gt=0, le=600, description="Deadline for the "
                                      "graceful stop (finish batch, flush, commit, close).")
    stats_interval_s: float = Field(30.0, gt=0, description="Seconds between progress log "
                                    "lines.")
    commit_interval_s: float = Field(10.0, gt=0, le=3_600, description="Seconds between "
                                     "checkpoints: alerts acknowledged, state written to the "
                                     "changelog (spread over half the interval), then input "
                                     "offsets committed. After a crash at most about 1.5 times "
                                     "this much input is processed again; each checkpoint "
                                     "rewrites every stream that changed (~3.2 KB each).")
    memory_limit: str = Field("", description="Memory the daemon may use (bytes, 2Gi, "
                              "1500Mi); empty = the cgroup limit, if any. The daemon exits 2 at "
                              "start-up when its streams cannot fit (README, Memory).")
    metrics_port: int = Field(9108, ge=0, le=65_535, description="HTTP port of the Prometheus "
                              "/metrics, /healthz (liveness) and /readyz (readiness) endpoints "
                              "of `run`; 0 = no HTTP server.")
    # All interfaces: Prometheus and the kubelet reach the endpoints from outside the pod.
    metrics_bind: str = Field("0.0.0.0", min_length=1,  # noqa: S104
                              description="Address the metrics and probe endpoints listen on "
                              "(127.0.0.1 = this host only).")

    @model_validator(mode="after")
    def _check_memory_limit(self) -> ServiceSettings:
        if self.memory_limit:
            memory_size_bytes(self.memory_limit, "memory_limit")
        return self


class Settings(BaseSettings):
    """Everything the daemon can be told; sections map to DETECTOR_<SECTION>_<FIELD>."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    model: ModelSettings = ModelSettings()
    alert: AlertSettings = AlertSettings()
    state: StateSettings = StateSettings()
    log: LogSettings = LogSettings()
    service: ServiceSettings = ServiceSettings()


def iter_setting_fields() -> Iterator[tuple[str, str, Any, str]]:
    """(env name, section, default, description) for every setting, in declaration order."""
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for name, sub in model.model_fields.items():  # type: ignore[union-attr]
            default = sub.get_default(call_default_factory=True)
            yield f"{ENV_PREFIX}{section}_{name}".upper(), section, default, sub.description or ""


def known_env_names() -> frozenset[str]:
    return frozenset(name for name, *_ in iter_setting_fields())

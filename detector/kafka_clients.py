"""kafka-python clients built from the settings (security, consumer, producer, topics), for the
daemon, the state changelog, the simulator and the benches; and what became of a send."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    AuthorizationError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
)

from detector.errors import BrokerUnavailableError, SettingsError
from detector.settings import KafkaSettings


def client_config(k: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by every client."""
    config: dict[str, Any] = {
        "bootstrap_servers": k.bootstrap_list,
        "client_id": k.client_id,
        "security_protocol": k.security_protocol,
        "request_timeout_ms": k.request_timeout_ms,
        "bootstrap_timeout_ms": k.connect_timeout_ms,
    }
    if k.security_protocol.startswith("SASL"):
        config.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                      sasl_plain_password=k.sasl_password.get_secret_value())
    if k.security_protocol.endswith("SSL"):
        config.update(ssl_cafile=k.ssl_cafile or None, ssl_certfile=k.ssl_certfile or None,
                      ssl_keyfile=k.ssl_keyfile or None,
                      ssl_password=k.ssl_password.get_secret_value() or None)
    return config


def _unreachable(k: KafkaSettings, exc: Exception) -> BrokerUnavailableError:
    return BrokerUnavailableError(
        f"DETECTOR_KAFKA_BOOTSTRAP_SERVERS: cannot reach Kafka at {k.bootstrap_servers!r} ({exc})")


def _refused(exc: Exception) -> SettingsError:
    """The cluster answered but refused the credentials or the permissions."""
    if isinstance(exc, SaslAuthenticationFailedError):
        return SettingsError("DETECTOR_KAFKA_SASL_USERNAME / DETECTOR_KAFKA_SASL_PASSWORD(_FILE): "
                             f"the cluster refused the login ({type(exc).__name__})")
    return SettingsError(f"DETECTOR_KAFKA_SASL_USERNAME: the cluster refused an operation to "
                         f"this principal ({type(exc).__name__})")


_REFUSALS = (SaslAuthenticationFailedError, AuthorizationError)


def build_consumer(k: KafkaSettings, *, group_id: str | None = None) -> KafkaConsumer:
    try:
        return KafkaConsumer(
            **client_config(k),
            group_id=group_id or k.group_id,
            enable_auto_commit=False,
            auto_offset_reset=k.auto_offset_reset,
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=k.heartbeat_interval_ms,
            max_poll_records=k.max_poll_records,
            max_poll_interval_ms=k.max_poll_interval_ms,
            fetch_max_wait_ms=k.fetch_max_wait_ms,
            # The classic protocol: KIP-848 groups are not supported everywhere yet.
            partition_assignment_strategy=_assignors(),
            group_instance_id=k.group_instance_id or None,
            # Subscribing must never create the input topic (a misspelt name would become an
            # empty topic the daemon waits on, ready): it is created by create_topics or by
            # the operator, and the daemon waits for it (detector/daemon/input_topic.py).
            allow_auto_create_topics=False,
        )
    except KafkaTimeoutError as exc:
        raise _unreachable(k, exc) from None
    except _REFUSALS as exc:
        raise _refused(exc) from None


def _assignors() -> list[Any]:
    from kafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: PLC0415
    from kafka.coordinator.assignors.roundrobin import (  # noqa: PLC0415
        RoundRobinPartitionAssignor,
    )

    return [RangePartitionAssignor, RoundRobinPartitionAssignor]


def build_producer(k: KafkaSettings, **overrides: Any) -> KafkaProducer:
    try:
        options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5,
                                   "compression_type": "lz4"}
        return KafkaProducer(**client_config(k), **{**options, **overrides})
    except KafkaTimeoutError as exc:
        raise _unreachable(k, exc) from None
    except _REFUSALS as exc:
        raise _refused(exc) from None


def ensure_topics(k: KafkaSettings, topics: list[str]) -> list[str]:
    """Create the missing topics; returns those created."""
    try:
        admin = KafkaAdminClient(**client_config(k))
    except KafkaTimeoutError as exc:
        raise _unreachable(k, exc) from None
    except _REFUSALS as exc:
        raise _refused(exc) from None
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t and t not in existing]
        if missing:
            new = [NewTopic(t, k.topic_partitions, k.replication_factor) for t in missing]
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        admin.close()


def probe_cluster(k: KafkaSettings, timeout_s: float) -> tuple[int, set[str]]:
    """(brokers, topic names) of the cluster, asked with a timeout of `timeout_s` for each
    step (a check should answer in seconds, not DETECTOR_KAFKA_CONNECT_TIMEOUT_MS)."""
    ms = max(100, int(timeout_s * 1000))
    try:
        admin = KafkaAdminClient(**{**client_config(k), "bootstrap_timeout_ms": ms,
                                    "request_timeout_ms": ms})
    except KafkaTimeoutError:
        raise BrokerUnavailableError(
            f"DETECTOR_KAFKA_BOOTSTRAP_SERVERS: no broker answered at {k.bootstrap_servers!r} "
            f"within {timeout_s:g} s") from None
    except _REFUSALS as exc:
        raise _refused(exc) from None
    try:
        brokers = len(admin.describe_cluster().get("brokers", []))
        return brokers, set(admin.list_topics())
    except KafkaTimeoutError as exc:
        raise _unreachable(k, exc) from None
    except _REFUSALS as exc:
        raise _refused(exc) from None
    finally:
        admin.close()


def failure_of(future: Any) -> BaseException | None:
    """The error of a send that completed unsuccessfully, None while pending or after success."""
    return future.exception if future.is_done and future.failed() else None

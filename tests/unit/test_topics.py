"""Topics the daemon creates take the broker's default replication factor unless told."""

from __future__ import annotations

import pytest

import detector.kafka_clients as clients
import detector.state.changelog as changelog
from detector.errors import SettingsError
from detector.settings_env import load_settings


class FakeAdmin:
    created: list = []

    def __init__(self, **_: object) -> None:
        pass

    def list_topics(self) -> list[str]:
        return ["metrics"]

    def create_topics(self, topics: list) -> None:
        FakeAdmin.created.extend(topics)

    def close(self) -> None:
        pass


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.created = []
    monkeypatch.setattr(changelog, "KafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(clients, "KafkaAdminClient", FakeAdmin)
    return FakeAdmin


def test_changelog_created_by_default_takes_the_brokers_replication_factor(clean_env,
                                                                            admin) -> None:
    changelog.ensure_changelog(load_settings().kafka, partitions=4)
    (topic,) = admin.created
    assert (topic.name, topic.num_partitions, topic.replication_factor) == (
        "lstm-detector-changelog", 4, -1)
    assert topic.topic_configs["cleanup.policy"] == "compact"


def test_create_topics_uses_the_replication_factor_setting(clean_env, admin) -> None:
    clean_env.setenv("DETECTOR_KAFKA_REPLICATION_FACTOR", "3")
    clean_env.setenv("DETECTOR_KAFKA_DLQ_TOPIC", "dlq")
    assert clients.ensure_topics(load_settings().kafka, ["metrics", "alerts", "dlq"]) == [
        "alerts", "dlq"]
    assert [t.replication_factor for t in admin.created] == [3, 3]


def test_replication_factor_zero_is_refused_naming_the_variable(clean_env) -> None:
    clean_env.setenv("DETECTOR_KAFKA_REPLICATION_FACTOR", "0")
    with pytest.raises(SettingsError, match=r"^DETECTOR_KAFKA_REPLICATION_FACTOR: must be -1 "
                                            r"\(the broker's default\) or at least 1$"):
        load_settings()

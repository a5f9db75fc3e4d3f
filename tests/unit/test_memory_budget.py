"""The memory formula, the cgroup limit and the start-up refusal when the streams cannot fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.daemon.memory_budget import (
    BASE_BYTES,
    MIB,
    PARTITION_BYTES,
    arena_row_bytes,
    cgroup_memory_limit,
    check_budget,
    needed_bytes,
    stream_budget_bytes,
    streams_that_fit,
)
from detector.errors import SettingsError
from detector.settings_env import load_settings
from detector.units import memory_size_bytes


def settings(clean_env, **env: str):
    for name, value in env.items():
        clean_env.setenv(name, value)
    return load_settings()


def test_default_stream_costs_its_row_two_and_a_half_times_plus_3_kib(clean_env) -> None:
    s = settings(clean_env)
    assert arena_row_bytes(s) == 3_904  # a stream of 4 metrics, the daily evidence on
    assert stream_budget_bytes(s) == int(2.5 * 3_904) + 3_072 == 12_832
    assert needed_bytes(s, 4) == BASE_BYTES + 4 * (PARTITION_BYTES + 100_000 * 12_832)


def test_seasonal_buckets_make_a_stream_dearer(clean_env) -> None:
    s = settings(clean_env, DETECTOR_MODEL_SEASONAL_BUCKETS="288")
    # the steps, their counts and the seasonal prior of each window input (16 x 4 x 4)
    assert arena_row_bytes(s) == 3_904 + 288 * 4 * 4 + 288 * 4 - 4 * 4 - 4 + 16 * 4 * 4
    assert stream_budget_bytes(s) > 2 * 12_832


def test_check_too_many_streams_for_the_limit_exits_2_naming_the_variables(clean_env) -> None:
    s = settings(clean_env, DETECTOR_SERVICE_MEMORY_LIMIT="2Gi")
    with pytest.raises(SettingsError) as caught:
        check_budget(s, topic_partitions=4, cgroup_limit=lambda: None)
    message = str(caught.value)
    assert message.startswith("DETECTOR_STATE_MAX_STREAMS: 100000 streams x the 4 partitions "
                              "of DETECTOR_KAFKA_INPUT_TOPIC 'metrics' need 5,359 MiB, over "
                              "DETECTOR_SERVICE_MEMORY_LIMIT (2,048 MiB); at most ")
    fit = streams_that_fit(s, 4, 2 * 1024 * MIB)
    assert f"at most {fit} streams per partition fit" in message and "\n" not in message
    ok = settings(clean_env, DETECTOR_STATE_MAX_STREAMS=str(fit))
    assert check_budget(ok, topic_partitions=4, cgroup_limit=lambda: None).fits
    over = settings(clean_env, DETECTOR_STATE_MAX_STREAMS=str(fit + 1))
    with pytest.raises(SettingsError):
        check_budget(over, topic_partitions=4, cgroup_limit=lambda: None)


def test_check_uses_the_cgroup_limit_when_no_setting_names_one(clean_env) -> None:
    s = settings(clean_env)
    with pytest.raises(SettingsError, match=r"over the cgroup memory limit \(1,024 MiB\)"):
        check_budget(s, topic_partitions=1, cgroup_limit=lambda: 1024 * MIB)
    assert check_budget(s, topic_partitions=1, cgroup_limit=lambda: None).fits  # no limit


def test_check_max_partitions_replaces_the_topics_partition_count(clean_env) -> None:
    s = settings(clean_env, DETECTOR_SERVICE_MEMORY_LIMIT="3Gi",
                 DETECTOR_STATE_MAX_STREAMS="100000", DETECTOR_STATE_MAX_PARTITIONS="2")
    budget = check_budget(s, topic_partitions=64, cgroup_limit=lambda: None)
    assert budget.fits and budget.partitions == 2
    with pytest.raises(SettingsError, match="x DETECTOR_STATE_MAX_PARTITIONS need"):
        check_budget(settings(clean_env, DETECTOR_STATE_MAX_PARTITIONS="3"), 64,
                     cgroup_limit=lambda: None)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_is_the_lowest_along_the_path(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/kubepods/pod1/ctr\n")
    write(tmp_path / "fs/kubepods/pod1/ctr/memory.max", "max\n")
    write(tmp_path / "fs/kubepods/pod1/memory.max", "3221225472\n")
    write(tmp_path / "fs/kubepods/memory.max", "max\n")
    assert cgroup_memory_limit(tmp_path / "fs", tmp_path / "proc") == 3 * 1024 * MIB


def test_cgroup_v2_inside_a_container_namespace_reads_the_root_file(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/\n")
    write(tmp_path / "fs/memory.max", "2147483648\n")
    assert cgroup_memory_limit(tmp_path / "fs", tmp_path / "proc") == 2 * 1024 * MIB


def test_cgroup_v1_unlimited_is_none(tmp_path: Path) -> None:
    write(tmp_path / "proc", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    write(tmp_path / "fs/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(tmp_path / "fs", tmp_path / "proc") is None
    write(tmp_path / "fs/memory/docker/abc/memory.limit_in_bytes", "1073741824\n")
    assert cgroup_memory_limit(tmp_path / "fs", tmp_path / "proc") == 1024 * MIB


def test_cgroup_unreadable_is_none(tmp_path: Path) -> None:
    assert cgroup_memory_limit(tmp_path, tmp_path / "no-such-file") is None


def test_memory_limit_setting_takes_kubernetes_quantities(clean_env, capsys) -> None:
    assert memory_size_bytes("1536Mi") == 1536 * MIB
    assert memory_size_bytes("2G") == 2_000_000_000 and memory_size_bytes("0.5Gi") == 512 * MIB
    assert settings(clean_env, DETECTOR_SERVICE_MEMORY_LIMIT="2Gi").service.memory_limit == "2Gi"
    with pytest.raises(SettingsError, match="DETECTOR_SERVICE_MEMORY_LIMIT: '2GB' is not a "
                                            "memory size"):
        settings(clean_env, DETECTOR_SERVICE_MEMORY_LIMIT="2GB")

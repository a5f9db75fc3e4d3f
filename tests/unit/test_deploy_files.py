"""Deployment files stay in step with the settings and keep their security posture."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from detector.daemon.probes import PATHS
from detector.daemon.telemetry import Telemetry
from detector.settings import ServiceSettings, known_env_names
from tests.conftest import REPO

METRICS_PORT = ServiceSettings().metrics_port
KDIR = REPO / "deploy/kubernetes"
STATEFULSET = KDIR / "statefulset.yaml"

DEPLOY_FILES = sorted([*REPO.glob("deploy/**/*.yaml"), *REPO.glob("deploy/**/*.yml"),
                       *REPO.glob("deploy/**/*.env"), REPO / "Dockerfile"])


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_deploy_file_uses_only_known_detector_settings(path) -> None:
    names = set(re.findall(r"\bDETECTOR_[A-Z0-9_]+", path.read_text()))
    assert names - known_env_names() == set()


def test_statefulset_runs_non_root_with_a_read_only_root_filesystem() -> None:
    text = STATEFULSET.read_text()
    for required in ("runAsNonRoot: true", "readOnlyRootFilesystem: true",
                     "allowPrivilegeEscalation: false", 'drop: ["ALL"]',
                     "mountPath: /var/lib/detector"):
        assert required in text, required


def test_dockerfile_installs_cpu_torch_and_runs_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["detector"]' in text


def test_dockerfile_pins_the_base_by_digest_and_installs_the_hashed_lock() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${PYTHON_IMAGE}"] * 2
    assert "pip install --require-hashes --no-deps -r requirements.lock" in text
    assert "pip install --no-deps --no-build-isolation ." in text


def test_dockerfile_exposes_the_metrics_port_and_a_writable_tmpdir() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {METRICS_PORT}$", text, re.M)
    assert "TMPDIR=/var/lib/detector" in text and 'VOLUME ["/var/lib/detector"]' in text


def test_lock_pins_every_runtime_dependency_with_hashes_and_cpu_torch() -> None:
    from packaging.requirements import Requirement

    lock = (REPO / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+) \\$", lock, re.M))
    blocks = re.split(r"^(?=[a-z])", lock, flags=re.M)[1:]
    assert all("--hash=sha256:" in block for block in blocks)
    assert len(blocks) == len(pinned)
    assert pinned["torch"].endswith("+cpu")
    pyproject = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.M | re.S).group(1)
    for line in re.findall(r'^\s*"([^"]+)",', deps, re.M):
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock: run scripts/lock"
        version = pinned[name].split("+")[0]
        assert req.specifier.contains(version), f"{name}=={version} breaks {req}: scripts/lock"
        for extra in req.extras:  # kafka-python[crc32c,lz4]
            assert extra in pinned, extra


def test_kustomization_lists_every_manifest_but_never_the_secret() -> None:
    kustomization = yaml.safe_load((KDIR / "kustomization.yaml").read_text())
    present = {p.name for p in KDIR.glob("*.yaml")} - {"kustomization.yaml",
                                                       "secret.example.yaml"}
    assert set(kustomization["resources"]) == present
    assert not any(yaml.safe_load(p.read_text())["kind"] == "Secret"
                   for p in KDIR.glob("*.yaml") if p.name in kustomization["resources"])
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "lstm-detector" and generator["envs"] == ["detector.env"]
    assert (KDIR / "detector.env").is_file()


def env_file() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (KDIR / "detector.env").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return dict(pairs)


def test_settings_file_holds_only_known_settings_and_no_secret() -> None:
    settings = env_file()
    assert set(settings) <= known_env_names()
    assert "DETECTOR_KAFKA_SASL_PASSWORD" not in settings
    assert settings["DETECTOR_KAFKA_SASL_PASSWORD_FILE"] == "/etc/kafka-sasl/sasl-password"


def test_statefulset_uses_stable_pod_names_for_static_membership() -> None:
    sts = yaml.safe_load(STATEFULSET.read_text())
    service = yaml.safe_load((KDIR / "service.yaml").read_text())
    assert sts["kind"] == "StatefulSet" and sts["spec"]["serviceName"] == \
        service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DETECTOR_KAFKA_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.name"
    # A replaced pod must rejoin before the group gives its partitions away.
    assert int(env_file()["DETECTOR_KAFKA_SESSION_TIMEOUT_MS"]) >= 30_000


def test_disruption_budget_and_spread_select_the_detector_pods() -> None:
    sts = yaml.safe_load(STATEFULSET.read_text())
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    pdb = yaml.safe_load((KDIR / "poddisruptionbudget.yaml").read_text())
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spread = sts["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname",
                                                  "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"].items() <= pod_labels.items() for c in spread)


def test_statefulset_memory_limit_fits_the_stream_cap_by_the_daemons_formula(clean_env
                                                                              ) -> None:
    from detector.daemon.memory_budget import check_budget
    from detector.settings_env import load_settings
    from detector.units import memory_size_bytes

    sts = yaml.safe_load(STATEFULSET.read_text())
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    limit = memory_size_bytes(container["resources"]["limits"]["memory"])
    settings = env_file()
    clean_env.setenv("DETECTOR_STATE_MAX_STREAMS", settings["DETECTOR_STATE_MAX_STREAMS"])
    # The input topic's partitions in the examples (docker-compose.yml's `metrics:4`): one pod
    # holds them all while the other is replaced.
    partitions = int(re.search(r"\bmetrics:(\d+)",
                               (REPO / "deploy/docker-compose.yml").read_text()).group(1))
    budget = check_budget(load_settings(), partitions, cgroup_limit=lambda: limit)
    assert budget.fits and budget.limit == limit and budget.needed > limit * 0.7


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    validate = pytest.importorskip("kubernetes_validate")
    for path in sorted(KDIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for resource in yaml.safe_load_all(path.read_text()):
            validate.validate(resource, "1.30", strict=True)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    import shutil
    import subprocess

    hadolint = shutil.which("hadolint") or str(REPO / ".venv/bin/hadolint")
    proc = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _probe_paths(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+Probe):\s*\n\s*httpGet: \{path: (\S+), port: metrics\}",
                           text))


def test_statefulset_probes_point_at_the_served_health_and_readiness_paths() -> None:
    text = STATEFULSET.read_text()
    assert _probe_paths(text) == {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                                  "readinessProbe": "/readyz"}
    assert set(_probe_paths(text).values()) <= set(PATHS)


def test_statefulset_exposes_and_annotates_the_default_metrics_port() -> None:
    text = STATEFULSET.read_text()
    assert re.search(rf"- name: metrics\n\s+containerPort: {METRICS_PORT}\n", text)
    assert f'prometheus.io/port: "{METRICS_PORT}"' in text
    assert "prometheus.io/path: /metrics" in text
    assert "DETECTOR_SERVICE_METRICS_PORT" not in env_file(), "the manifests assume the default"


def test_compose_publishes_the_metrics_port_and_checks_readiness() -> None:
    text = (REPO / "deploy/docker-compose.yml").read_text()
    assert re.search(rf'"127\.0\.0\.1:[\d-]+:{METRICS_PORT}"', text)
    assert f"http://127.0.0.1:{METRICS_PORT}/readyz" in text


def test_dashboard_queries_only_metrics_the_daemon_exports() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/lstm-detector.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= len(dashboard["panels"]) >= 9
    queried = {name for e in exprs for name in re.findall(r"\bdetector_\w+", e)}
    assert queried - Telemetry(port=0).metric_names() == set()
    families = {re.sub(r"_(total|bucket)$", "", name) for name in queried}
    assert families >= {
        "detector_events_consumed", "detector_alerts_published", "detector_bad_records",
        "detector_consumer_lag", "detector_batch_latency_seconds", "detector_live_streams",
        "detector_evictions", "detector_model_train_loss",
        "detector_checkpoint_duration_seconds"}

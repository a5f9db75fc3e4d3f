"""Deployment files stay in step with the settings and keep their security posture."""

from __future__ import annotations

import json
import re

import pytest

from detector.settings import ServiceSettings, known_env_names
from detector.telemetry import PATHS, Telemetry
from tests.conftest import REPO

METRICS_PORT = ServiceSettings().metrics_port

DEPLOY_FILES = sorted([*REPO.glob("deploy/**/*.yaml"), *REPO.glob("deploy/**/*.yml"),
                       REPO / "Dockerfile"])


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_deploy_file_uses_only_known_detector_settings(path) -> None:
    names = set(re.findall(r"\bDETECTOR_[A-Z0-9_]+", path.read_text()))
    assert names - known_env_names() == set()


def test_deployment_runs_non_root_with_a_read_only_root_filesystem() -> None:
    text = (REPO / "deploy/kubernetes/deployment.yaml").read_text()
    for required in ("runAsNonRoot: true", "readOnlyRootFilesystem: true",
                     "allowPrivilegeEscalation: false", 'drop: ["ALL"]',
                     "mountPath: /var/lib/detector"):
        assert required in text, required


def test_dockerfile_installs_cpu_torch_and_runs_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu" in text and "torch==2.13.0" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["detector"]' in text


def test_kustomization_lists_every_manifest() -> None:
    kdir = REPO / "deploy/kubernetes"
    listed = set(re.findall(r"-\s+(\S+\.yaml)", (kdir / "kustomization.yaml").read_text()))
    present = {p.name for p in kdir.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def _probe_paths(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+Probe):\s*\n\s*httpGet: \{path: (\S+), port: metrics\}",
                           text))


def test_deployment_probes_point_at_the_served_health_and_readiness_paths() -> None:
    text = (REPO / "deploy/kubernetes/deployment.yaml").read_text()
    assert _probe_paths(text) == {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                                  "readinessProbe": "/readyz"}
    assert set(_probe_paths(text).values()) <= set(PATHS)


def test_deployment_exposes_and_annotates_the_default_metrics_port() -> None:
    text = (REPO / "deploy/kubernetes/deployment.yaml").read_text()
    assert re.search(rf"- name: metrics\n\s+containerPort: {METRICS_PORT}\n", text)
    assert f'prometheus.io/port: "{METRICS_PORT}"' in text
    assert "prometheus.io/path: /metrics" in text
    configmap = (REPO / "deploy/kubernetes/configmap.yaml").read_text()
    assert "DETECTOR_SERVICE_METRICS_PORT" not in configmap, "the manifests assume the default"


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

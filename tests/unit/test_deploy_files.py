"""Deployment files stay in step with the settings and keep their security posture."""

from __future__ import annotations

import re

import pytest

from detector.settings import known_env_names
from tests.conftest import REPO

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

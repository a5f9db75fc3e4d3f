"""Without a writable temporary folder torch's import fails deep inside: one line, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import pytest

from detector.cli import main
from tests.conftest import REPO


def test_no_writable_temp_folder_exits_2_with_one_line_naming_tmpdir(clean_env, capsys,
                                                                    monkeypatch) -> None:
    def nowhere() -> str:
        raise FileNotFoundError(2, "No usable temporary directory found in ['/nope']")

    monkeypatch.setattr(tempfile, "gettempdir", nowhere)
    clean_env.setenv("DETECTOR_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    assert main(["run"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("detector: configuration error: TMPDIR: no writable temporary "
                           "folder")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_read_only_root_without_tmpdir_exits_2_without_a_traceback() -> None:
    """As in a container with a read-only root file system and no volume mounted."""
    proc = subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-user",
         "--uid", "10001", "--gid", "10001", "--chdir", "/", "--clearenv",
         "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "TMPDIR", "/nonexistent",
         "--setenv", "DETECTOR_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9",
         sys.executable, "-m", "detector", "run"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={"PYTHONPATH": str(REPO)})
    if "bwrap:" in proc.stderr and proc.returncode != 2:
        pytest.skip(f"bubblewrap cannot sandbox here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("detector: configuration error: TMPDIR: ")

"""Finding the NAB corpus: a named folder, NAB_ROOT, ../shared/nab, the cache, a download."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from detector.bench.nab.locate import REPO, cache_dir, locate, mismatches, read_manifest

FILES = {"data/cat/a.csv": b"timestamp,value\n2020-01-01 00:00:00,1\n",
         "labels/combined_windows.json": b"{}",
         "config/profiles.json": b"{}",
         "LICENSE.txt": b"MIT"}
MANIFEST = {rel: hashlib.sha256(body).hexdigest() for rel, body in FILES.items()}


def archive(path: Path, files: dict[str, bytes], prefix: str = "NAB-abc/") -> str:
    with tarfile.open(path, "w:gz") as tar:
        for rel, body in {**files, "README.md": b"not wanted"}.items():
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path.as_uri()


def test_locate_named_folder_wins_over_everything(tmp_path: Path) -> None:
    found = locate(tmp_path / "mine", env={"NAB_ROOT": "/elsewhere"}, beside=tmp_path)
    assert (found.root, found.source) == (tmp_path / "mine", "--nab-root")


def test_locate_nab_root_variable_comes_next(tmp_path: Path) -> None:
    found = locate(env={"NAB_ROOT": str(tmp_path / "env")}, beside=tmp_path)
    assert (found.root, found.source) == (tmp_path / "env", "NAB_ROOT")


def test_locate_shared_folder_beside_the_checkout(tmp_path: Path) -> None:
    (tmp_path / "shared" / "nab" / "data").mkdir(parents=True)
    found = locate(env={}, beside=tmp_path)
    assert found.root == tmp_path / "shared" / "nab" and "beside the checkout" in found.source


def test_locate_nothing_beside_downloads_checks_and_then_uses_the_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    url = archive(tmp_path / "nab.tar.gz", FILES)
    found = locate(env=env, beside=tmp_path, url=url, manifest=MANIFEST)
    assert found.root == cache_dir(env) and found.source.startswith("downloaded NAB")
    assert sorted(p.relative_to(found.root).as_posix() for p in found.root.rglob("*")
                  if p.is_file()) == sorted(FILES)
    again = locate(env=env, beside=tmp_path, url="file:///nonexistent", manifest=MANIFEST)
    assert again.root == found.root and again.source.startswith("the cache")


def test_locate_tampered_download_is_refused_and_not_cached(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    url = archive(tmp_path / "nab.tar.gz", {**FILES, "data/cat/a.csv": b"changed"})
    with pytest.raises(FileNotFoundError, match=r"another checksum .* e\.g\. data/cat/a\.csv"):
        locate(env=env, beside=tmp_path, url=url, manifest=MANIFEST)
    assert not cache_dir(env).exists()


def test_locate_unreachable_download_names_every_way_to_give_the_corpus(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    with pytest.raises(FileNotFoundError, match=r"give --nab-root or NAB_ROOT, or put it at "
                                                r".*shared/nab; downloading file:"):
        locate(env=env, beside=tmp_path, url=(tmp_path / "missing.tar.gz").as_uri(),
               manifest=MANIFEST)


def test_manifest_pins_the_whole_corpus_and_its_licence() -> None:
    manifest = read_manifest()
    assert sum(rel.startswith("data/") for rel in manifest) == 58
    assert {"labels/combined_windows.json", "config/profiles.json", "LICENSE.txt"} <= set(manifest)
    assert all(len(digest) == 64 for digest in manifest.values())
    assert mismatches(Path("/nonexistent"), {"x": "0" * 64}) == ["x"]


def test_beside_the_checkout_means_the_repository_root() -> None:
    """The default `beside` is the folder holding the checkout, so ../shared/nab is found
    (the package once moved a level deeper and the default pointed inside the checkout)."""
    assert (REPO / "pyproject.toml").is_file()
    assert (REPO / "detector" / "bench" / "nab" / "locate.py").is_file()

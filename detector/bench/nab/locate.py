"""Where the NAB corpus is: a folder named, one beside the checkout, or a pinned download.

`detector bench nab` looks, in this order, at `--nab-root`, the `NAB_ROOT` environment
variable, `../shared/nab` beside the repository checkout, and the cache
(`$XDG_CACHE_HOME/lstm-detector/bench/nab-<commit>`, default `~/.cache/...`); when none holds the
corpus it downloads NAB at the pinned commit from GitHub into the cache. A download is
checked file by file against `corpus.sha256` beside this module (SHA-256 of the 58 data files,
the label windows, the profiles and the MIT licence at that commit), so what the bench reads is
exactly what the published scores were computed on; a cached copy is checked the same way
before use. The bench prints which source it used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

NAB_COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
ARCHIVE_URL = f"https://github.com/numenta/NAB/archive/{NAB_COMMIT}.tar.gz"
MANIFEST = Path(__file__).with_name("corpus.sha256")
REPO = Path(__file__).resolve().parents[3]     # the checkout: detector/bench/nab/locate.py
DOWNLOAD_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Corpus:
    """A NAB root and how it was found, for the bench's output."""

    root: Path
    source: str


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """Relative path → SHA-256, from a `sha256sum` listing."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            out[rel.strip()] = digest
    return out


def mismatches(root: Path, manifest: Mapping[str, str]) -> list[str]:
    """Files of the manifest missing under `root` or with another checksum."""
    bad = []
    for rel, digest in manifest.items():
        path = root / rel
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(rel)
    return bad


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lstm-detector" / f"nab-{NAB_COMMIT[:12]}"


def locate(explicit: Path | None = None, *, env: Mapping[str, str] = os.environ,
           beside: Path = REPO.parent, url: str = ARCHIVE_URL,
           manifest: Mapping[str, str] | None = None) -> Corpus:
    """The corpus to use; FileNotFoundError naming every place tried when there is none."""
    if explicit is not None:
        return Corpus(Path(explicit), "--nab-root")
    if env.get("NAB_ROOT"):
        return Corpus(Path(env["NAB_ROOT"]), "NAB_ROOT")
    shared = beside / "shared" / "nab"
    if (shared / "data").is_dir():
        return Corpus(shared, "../shared/nab beside the checkout")
    expected = read_manifest() if manifest is None else manifest
    cached = cache_dir(env)
    if cached.is_dir() and not mismatches(cached, expected):
        return Corpus(cached, f"the cache (NAB {NAB_COMMIT[:12]}, checksums verified)")
    try:
        download(url, cached, expected)
    except (OSError, ValueError, tarfile.TarError) as exc:
        raise FileNotFoundError(
            f"NAB corpus not found: give --nab-root or NAB_ROOT, or put it at {shared}; "
            f"downloading {url} into {cached} failed ({exc})") from None
    return Corpus(cached, f"downloaded NAB {NAB_COMMIT[:12]} into the cache "
                          "(checksums verified)")


def download(url: str, target: Path, manifest: Mapping[str, str]) -> None:
    """Fetch the archive, keep the manifest's files, check them, then move them into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        archive = Path(work) / "nab.tar.gz"
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:  # noqa: S310
            with archive.open("wb") as out:
                shutil.copyfileobj(resp, out)
        unpacked = Path(work) / "nab"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[1] if "/" in member.name else ""
                if rel in manifest and member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    dest = unpacked / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(source.read())
        bad = mismatches(unpacked, manifest)
        if bad:
            raise ValueError(f"{len(bad)} file(s) missing or with another checksum than "
                             f"{MANIFEST.name} pins, e.g. {bad[0]}")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)

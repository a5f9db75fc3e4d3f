"""Model file: the autoencoder's weights and shape in a versioned .npz (no pickle).

Written by offline training, read by the daemon at start (DETECTOR_MODEL_PATH). The file's
content hash becomes part of `model_version`, so every alert names the weights it came from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FORMAT = "lstm-detector/model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelFile:
    weights: dict[str, np.ndarray]
    shape: dict[str, int]   # hidden_size, window, max_metrics
    digest: str             # first 12 hex digits of the file's sha256
    meta: dict


def save_model(path: Path, model: torch.nn.Module, shape: dict[str, int],
               meta: dict | None = None) -> str:
    """Write the model; returns its digest."""
    header = {"format": FORMAT, "version": FORMAT_VERSION, "shape": shape, "meta": meta or {}}
    arrays = {f"w:{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                 **arrays)
    return _digest(path)


def load_model(path: Path) -> ModelFile:
    """Read a model file; ValueError with the reason when it is not one we can use."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            weights = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable model file ({exc})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not an lstm-detector model file")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: model file version {header.get('version')} is not supported "
                         f"(this build reads version {FORMAT_VERSION})")
    return ModelFile(weights, header["shape"], _digest(path), header.get("meta", {}))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]

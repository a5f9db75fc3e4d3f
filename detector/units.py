"""Memory sizes as Kubernetes writes them: 2147483648, 2Gi, 1500Mi, 2G, 0.5Gi."""

from __future__ import annotations

import re

MEMORY_SUFFIXES = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
                   "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def memory_size_bytes(text: str, name: str = "") -> int:
    """Bytes of a quantity; ValueError (starting with `name: ` when given) otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2) not in MEMORY_SUFFIXES:
        raise ValueError(f"{name + ': ' if name else ''}{text!r} is not a memory size: bytes, "
                         "or a number with one of Ki, Mi, Gi, Ti (or k, M, G, T), e.g. 2Gi")
    return int(float(match.group(1)) * MEMORY_SUFFIXES[match.group(2)])

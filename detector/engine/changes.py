"""What changed in an engine since its last checkpoint: the streams whose state changed and the
streams evicted. A checkpoint takes them (and so empties them) in one call."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Changes:
    dirty: set[int] = field(default_factory=set)   # slots whose state changed
    evicted: list[str] = field(default_factory=list)  # streams evicted, in order

    def take(self) -> tuple[np.ndarray, list[str]]:
        """(changed slots, sorted; streams evicted) since the last call."""
        slots = np.array(sorted(self.dirty), dtype=np.int64)
        evicted, self.evicted = self.evicted, []
        self.dirty.clear()
        return slots, evicted

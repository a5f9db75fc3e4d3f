"""Score one detector's run on a corpus twice: at its shipped threshold and swept on labels.

The shipped score counts the alerts the daemon would have raised (for our detector the replay's
`alert` column: DETECTOR_ALERT_THRESHOLD with its overrides, cooldown and warm-up); the swept
score is NAB's, with one threshold per profile chosen on the labels over the anomaly scores
(detector/bench/nab/scorer.py does both). Beside them: windows caught, and false alerts
(alerting rows outside every window) per 1,000 scored rows and per scored stream-day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from detector.bench.corpus import CorpusFile
from detector.bench.nab.profiles import Profile
from detector.bench.nab.scorer import FileLayout, file_layout, score_corpus, score_layout

DETECTION = 0.5  # threshold that turns 0/1 detections into the scorer's score >= threshold


def layouts(files: Sequence[CorpusFile], per_row: Mapping[str, np.ndarray]
            ) -> dict[str, FileLayout]:
    """Each file's per-row values laid out for the scorer over its scored rows."""
    return {f.rel: file_layout(per_row[f.rel], f.windows, f.n, f.probation, f.rel)
            for f in files}


def evaluate(files: Sequence[CorpusFile], scores: Mapping[str, np.ndarray],
             detections: Mapping[str, np.ndarray], profiles: Sequence[Profile],
             shipped_threshold: float) -> dict:
    """{"shipped": {profile: entry}, "swept": {profile: entry}, "categories": {...}} where an
    entry holds score, threshold, windows, windows_detected, false_positives, fp_per_1000,
    fp_per_stream_day, clean_fp_per_stream_day (files without any window; None if none) and
    per_file raw scores. `detections` are the alerts raised at `shipped_threshold`."""
    swept_layouts = layouts(files, scores)
    shipped_layouts = layouts(files, {rel: np.asarray(d, dtype=np.float64)
                                      for rel, d in detections.items()})
    swept = score_corpus(swept_layouts, profiles)
    shipped = score_corpus(shipped_layouts, profiles,
                           thresholds={p.name: DETECTION for p in profiles})
    return {
        "shipped": {name: {**_entry(files, shipped_layouts, v, DETECTION),
                           "threshold": shipped_threshold} for name, v in shipped.items()},
        "swept": {name: _entry(files, swept_layouts, v, v["threshold"])
                  for name, v in swept.items()},
        "categories": categories(files, shipped_layouts, profiles[0]),
    }


def categories(files: Sequence[CorpusFile], laid_out: Mapping[str, FileLayout],
               profile: Profile) -> dict[str, dict]:
    """Per category (first folder under data/): windows caught and false alerts of 0/1
    detections (the counts do not depend on the profile's weights)."""
    out: dict[str, dict] = {}
    for f in files:
        counts = score_layout(laid_out[f.rel], DETECTION, profile)
        c = out.setdefault(f.category, {"files": 0, "windows": 0, "windows_detected": 0,
                                        "false_positives": 0, "stream_days": 0.0})
        c["files"] += 1
        c["windows"] += counts.windows
        c["windows_detected"] += counts.tp
        c["false_positives"] += counts.fp
        c["stream_days"] += f.scored_days
    for c in out.values():
        c["fp_per_stream_day"] = _per(c["false_positives"], c["stream_days"])
        c["stream_days"] = round(c["stream_days"], 3)
    return dict(sorted(out.items()))


def _entry(files: Sequence[CorpusFile], laid_out: Mapping[str, FileLayout], scored: dict,
           threshold: float) -> dict:
    rows = sum(f.scored_rows for f in files)
    days = sum(f.scored_days for f in files)
    clean = [f for f in files if not laid_out[f.rel].n_windows]
    clean_fp = sum(int((laid_out[f.rel].scores >= threshold).sum()) for f in clean)
    return {
        "score": None if np.isnan(scored["score"]) else float(scored["score"]),
        "threshold": threshold,
        "windows": scored["windows"], "windows_detected": scored["windows_detected"],
        "false_positives": scored["false_positives"],
        "fp_per_1000": _per(1000 * scored["false_positives"], rows),
        "fp_per_stream_day": _per(scored["false_positives"], days),
        "clean_fp_per_stream_day": _per(clean_fp, sum(f.scored_days for f in clean))
        if clean else None,
        "per_file": dict(scored["per_file"]),
    }


def _per(count: float, amount: float) -> float | None:
    return round(count / amount, 4) if amount > 0 else None

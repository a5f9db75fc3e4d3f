"""NAB scoring: per-row credit and penalty, the corpus-wide threshold sweep, normalisation.

The rules (Lavin & Ahmad 2015, NAB v1.1): a detection is `score >= threshold` on a row after
the probation. The first detection inside a label window earns tp * sigmoid credit (1 at the
window's left edge, 0 at its right end); a window with no detection costs fn; a detection
outside every window costs fp, weighted by how far past the preceding window it falls. The
threshold is one value for the whole corpus, chosen to maximise the raw score; the result is
normalised so that never firing scores 0 and the perfect detector 100.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from detector.nab.corpus import DataFile, Profile


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """2 / (1 + e^(5x)) - 1, and -1 beyond three window widths past a window."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, value)


MAX_CREDIT = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class Layout:
    """Threshold-independent per-row quantities of one scored file."""

    rel: str
    scores: np.ndarray     # anomaly scores of the scorable rows
    window: np.ndarray     # window index of each scorable row, -1 outside
    credit: np.ndarray     # tp credit in (0, 1] (inside) or fp weight in [-1, 0) (outside)
    n_windows: int         # windows with at least one scorable row
    first_credit: np.ndarray  # credit of each window's first scorable row


def layout(data: DataFile, scores: np.ndarray) -> Layout:
    n = data.n
    rows = np.arange(n)
    window = np.full(n, -1, dtype=np.int64)
    credit = np.full(n, -1.0)
    for k, (left, right) in enumerate(data.windows):
        width = right - left + 1
        window[left:right + 1] = k
        credit[left:right + 1] = scaled_sigmoid(-(right - rows[left:right + 1] + 1) / width)
        credit[left:right + 1] /= MAX_CREDIT
        stop = data.windows[k + 1][0] if k + 1 < len(data.windows) else n
        if width > 1:
            credit[right + 1:stop] = scaled_sigmoid((rows[right + 1:stop] - right) / (width - 1))
    keep = rows >= data.probation
    scored = sorted(set(window[keep & (window >= 0)].tolist()))
    first = np.array([credit[np.flatnonzero(keep & (window == k))[0]] for k in scored])
    return Layout(data.rel, np.asarray(scores, dtype=np.float64)[keep], window[keep],
                  credit[keep], len(scored), first)


def best_threshold(layouts: Iterable[Layout], profile: Profile) -> tuple[float, float]:
    """(threshold, raw score) maximising the raw score over every distinct score value;
    among equal raw scores the highest threshold. Above every score when never firing wins."""
    parts = list(layouts)
    base = -profile.fn * sum(p.n_windows for p in parts)
    scores = np.concatenate([p.scores for p in parts]) if parts else np.zeros(0)
    if scores.size == 0:
        return 1.1, base
    offsets = np.cumsum([0] + [int(p.window.max(initial=-1)) + 1 for p in parts])[:-1]
    keys = np.concatenate([np.where(p.window >= 0, p.window + off, -1)
                           for p, off in zip(parts, offsets, strict=True)])
    gain = np.concatenate([np.where(p.window >= 0, profile.tp * p.credit, profile.fp * p.credit)
                           for p in parts])
    order = np.argsort(-scores, kind="stable")
    scores, keys, gain = scores[order], keys[order], gain[order]
    step = np.where(keys < 0, gain, 0.0)
    inside = np.flatnonzero(keys >= 0)
    if inside.size:
        grouped = inside[np.argsort(keys[inside], kind="stable")]
        bounds = np.flatnonzero(np.diff(keys[grouped])) + 1
        for members in np.split(grouped, bounds):
            # A window is worth -fn until detected, then its best (earliest) credit so far.
            best = np.maximum.accumulate(np.maximum(gain[members], -profile.fn))
            step[members] = np.diff(np.concatenate(([-profile.fn], best)))
    total = base + np.cumsum(step)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    top = float(scores[0])
    candidates = np.r_[1.1 if top <= 1.0 else top + 1.0, scores[last_of_tie]]
    values = np.r_[base, total[last_of_tie]]
    best_value = values.max()
    pick = int(np.flatnonzero(values >= best_value - 1e-9 * max(1.0, abs(best_value)))[0])
    return float(candidates[pick]), float(values[pick])


@dataclass(frozen=True)
class FileScore:
    raw: float
    windows: int
    detected: int
    false_positives: int


def score_file(p: Layout, profile: Profile, threshold: float) -> FileScore:
    hit = p.scores >= threshold
    outside = hit & (p.window < 0)
    raw = float(profile.fp * p.credit[outside].sum())
    detected = 0
    for k in sorted(set(p.window[p.window >= 0].tolist())):
        rows = np.flatnonzero(hit & (p.window == k))
        if rows.size:
            raw += profile.tp * float(p.credit[rows[0]])
            detected += 1
        else:
            raw -= profile.fn
    return FileScore(raw, p.n_windows, detected, int(outside.sum()))


def baselines(layouts: Iterable[Layout], profile: Profile) -> tuple[float, float]:
    """Raw scores of the detector that never fires and of the perfect one."""
    parts = list(layouts)
    null = -profile.fn * sum(p.n_windows for p in parts)
    perfect = profile.tp * float(sum(p.first_credit.sum() for p in parts))
    return null, perfect


def normalise(raw: float, null: float, perfect: float) -> float:
    """0 = never fires, 100 = perfect; NaN when there is no window to find."""
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(layouts: Mapping[str, Layout], profiles: Iterable[Profile],
                 thresholds: Mapping[str, float] | None = None) -> dict[str, dict]:
    """Per profile: normalised score, threshold, raw score, counts and per-file raw scores."""
    out: dict[str, dict] = {}
    for profile in profiles:
        if thresholds is None:
            threshold, _ = best_threshold(layouts.values(), profile)
        else:
            threshold = thresholds[profile.name]
        per_file = {rel: score_file(p, profile, threshold) for rel, p in layouts.items()}
        raw = sum(f.raw for f in per_file.values())
        null, perfect = baselines(layouts.values(), profile)
        out[profile.name] = {
            "score": normalise(raw, null, perfect), "threshold": threshold, "raw_score": raw,
            "null_score": null, "perfect_score": perfect,
            "windows_detected": sum(f.detected for f in per_file.values()),
            "windows": sum(f.windows for f in per_file.values()),
            "false_positives": sum(f.false_positives for f in per_file.values()),
            "per_file": {rel: f.raw for rel, f in per_file.items()},
        }
    return out


def held_out(layouts: Mapping[str, Layout], profiles: Iterable[Profile]) -> dict[str, dict]:
    """Leave-one-category-out: each category is scored with the threshold fitted on the
    others; raw scores of the folds are summed and normalised over the whole corpus."""
    categories = sorted({rel.split("/", 1)[0] for rel in layouts})
    out: dict[str, dict] = {}
    for profile in profiles:
        raw, folds = 0.0, {}
        for category in categories:
            train = [p for rel, p in layouts.items() if not rel.startswith(category + "/")]
            test = [p for rel, p in layouts.items() if rel.startswith(category + "/")]
            threshold, _ = best_threshold(train, profile)
            fold = sum(score_file(p, profile, threshold).raw for p in test)
            folds[category] = {"threshold": threshold, "raw_score": fold}
            raw += fold
        null, perfect = baselines(layouts.values(), profile)
        out[profile.name] = {"score": normalise(raw, null, perfect), "raw_score": raw,
                             "folds": folds}
    return out

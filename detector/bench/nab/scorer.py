"""NAB scoring: per-row credit and penalty, the corpus-wide threshold sweep, normalisation.

Rules (NAB v1.1; ../shared/nab/README.md): a detection is `score >= threshold` on a row past
the probation. The earliest detection in a label window earns A_TP * sigma(y) / sigma(-1) with
y = -(R - i + 1) / W; a window without one costs A_FN. A detection outside every window costs
A_FP * sigma((i - R_prev) / (W_prev - 1)) after a window, the full A_FP before any window.
sigma(y) = 2 / (1 + e^(5y)) - 1, and -1 for y > 3. One threshold per profile serves the whole
corpus and is chosen to maximise the summed raw score; the result is normalised so that never
firing scores 0 and the perfect detector 100.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.bench.nab.corpus import DataFile, NabCorpus, Rows, read_run_scores
from detector.bench.nab.profiles import Profile


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """2 / (1 + e^(5y)) - 1, and exactly -1 beyond three window widths (y > 3)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, value)


MAX_CREDIT = float(scaled_sigmoid(-1.0))  # sigma at a window's left edge


@dataclass(frozen=True)
class FileLayout:
    """Threshold-independent quantities of one file's scorable rows (row >= probation)."""

    rel: str
    n: int
    probation: int
    windows: Rows              # inclusive row ranges, sorted
    scores: np.ndarray         # anomaly scores of the scorable rows
    window: np.ndarray         # window index of each scorable row, -1 outside every window
    credit: np.ndarray         # inside: tp credit in (0, 1]; outside: fp weight in [-1, 0)
    first_credit: np.ndarray   # credit of each scored window's first scorable row

    @property
    def n_windows(self) -> int:
        """Windows with at least one scorable row (the others are neither found nor missed)."""
        return int(self.first_credit.size)


def row_weights(windows: Rows, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(window index, credit) of every row: see FileLayout for the meaning of credit."""
    rows = np.arange(n)
    window = np.full(n, -1, dtype=np.int64)
    credit = np.full(n, -1.0)
    for k, (left, right) in enumerate(windows):
        width = right - left + 1
        inside = rows[left:right + 1]
        window[left:right + 1] = k
        credit[left:right + 1] = scaled_sigmoid(-(right - inside + 1) / width) / MAX_CREDIT
        stop = windows[k + 1][0] if k + 1 < len(windows) else n
        if width > 1:  # after a one-row window every false positive costs the full weight
            credit[right + 1:stop] = scaled_sigmoid((rows[right + 1:stop] - right) / (width - 1))
    return window, credit


def file_layout(scores: np.ndarray, windows_rows: Iterable[tuple[int, int]], n: int,
                probation: int, rel: str = "") -> FileLayout:
    """Lay out one file: scores aligned by row, windows as inclusive row ranges."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"{rel}: {scores.shape[0] if scores.ndim else 0} scores for {n} rows")
    windows = tuple(sorted((int(a), int(b)) for a, b in windows_rows))
    for k, (left, right) in enumerate(windows):
        if not 0 <= left <= right < (windows[k + 1][0] if k + 1 < len(windows) else n):
            raise ValueError(f"{rel}: window rows {left}..{right} out of range or overlapping")
    window, credit = row_weights(windows, n)
    first = [credit[max(left, probation)] for left, right in windows if right >= probation]
    return FileLayout(rel, n, probation, windows, scores[probation:], window[probation:],
                      credit[probation:], np.array(first, dtype=np.float64))


def layout(data: DataFile, scores: np.ndarray) -> FileLayout:
    """Lay out a loaded data file with one run's scores for it."""
    return file_layout(scores, data.windows, data.n, data.probation, data.rel)


@dataclass(frozen=True)
class FileScore:
    """Raw score of one file and its event counts at one threshold.

    tp: windows detected; fn: windows missed; fp: detections outside every window (each row
    counts). Probationary rows and windows entirely inside the probation are not counted.
    """

    raw: float
    tp: int
    fp: int
    fn: int

    @property
    def windows(self) -> int:
        return self.tp + self.fn

    @property
    def detected(self) -> int:
        return self.tp

    @property
    def false_positives(self) -> int:
        return self.fp


def score_layout(p: FileLayout, threshold: float, profile: Profile) -> FileScore:
    """Raw score of one laid-out file at `threshold` under `profile`."""
    hit = p.scores >= threshold
    outside = hit & (p.window < 0)
    hits_in = np.flatnonzero(hit & (p.window >= 0))
    _, first = np.unique(p.window[hits_in], return_index=True)  # earliest hit per window
    tp = int(first.size)
    fn = p.n_windows - tp
    raw = (profile.fp * float(p.credit[outside].sum())
           + profile.tp * float(p.credit[hits_in[first]].sum()) - profile.fn * fn)
    return FileScore(raw, tp, int(outside.sum()), fn)


def score_file(scores: np.ndarray, windows_rows: Iterable[tuple[int, int]], n: int,
               probation: int, threshold: float, profile: Profile) -> FileScore:
    """Raw score and counts of one file given its per-row scores and window row ranges."""
    return score_layout(file_layout(scores, windows_rows, n, probation), threshold, profile)


def optimise_threshold(layouts: Iterable[FileLayout], profile: Profile) -> tuple[float, float]:
    """(threshold, raw score) maximising the summed raw score over every distinct score value.

    Among thresholds within 1e-9 (relative) of the best raw score the highest wins. If never
    firing is best, the threshold lies above every score: 1.1 for scores in [0, 1].
    """
    parts = list(layouts)
    base = -profile.fn * sum(p.n_windows for p in parts)
    if not parts or not sum(p.scores.size for p in parts):
        return 1.1, base
    scores = np.concatenate([p.scores for p in parts])
    credit = np.concatenate([p.credit for p in parts])
    offsets = np.cumsum([0] + [len(p.windows) for p in parts])
    key = np.concatenate([np.where(p.window >= 0, p.window + off, -1)
                          for p, off in zip(parts, offsets, strict=False)])
    top = float(scores.max())

    # Sweep the threshold down through the scores; step[j] is what the j-th row changes.
    order = np.argsort(-scores, kind="stable")
    swept, key = scores[order], key[order]
    step = np.where(key < 0, profile.fp * credit[order], 0.0)
    inside = np.flatnonzero(key >= 0)
    if inside.size:
        # Within a window the credit falls with the row, so a window is worth the credit of its
        # earliest row swept so far: a running minimum of the row index, per window. Windows are
        # grouped (stable, so sweep order is kept) and offset so one accumulate restarts per
        # window: every row of a later window lies below every row of an earlier one.
        group = inside[np.argsort(key[inside], kind="stable")]
        k, row = key[group], order[group]
        span = scores.size + 1
        earliest = np.minimum.accumulate(row - k * span) + k * span
        worth = profile.tp * credit[earliest]
        before = np.r_[-profile.fn, worth[:-1]]
        before[np.r_[True, k[1:] != k[:-1]]] = -profile.fn
        step[group] = worth - before
    total = base + np.cumsum(step)
    last_of_tie = np.r_[swept[1:] != swept[:-1], True]
    thresholds = np.r_[1.1 if top <= 1.0 else top + 1.0, swept[last_of_tie]]
    values = np.r_[base, total[last_of_tie]]
    best = float(values.max())
    pick = int(np.flatnonzero(values >= best - 1e-9 * max(1.0, abs(best)))[0])
    return float(thresholds[pick]), float(values[pick])


def baselines(layouts: Iterable[FileLayout], profile: Profile) -> tuple[float, float]:
    """(null, perfect): raw scores of the detector that never fires and of the one that fires
    exactly on the first scorable row of every window."""
    parts = list(layouts)
    null = -profile.fn * sum(p.n_windows for p in parts)
    perfect = profile.tp * float(sum(p.first_credit.sum() for p in parts))
    return null, perfect


def normalise(raw: float, perfect: float, null: float) -> float:
    """100 * (raw - null) / (perfect - null): 0 = never fires, 100 = perfect; NaN if no window."""
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


RunScores = Mapping[str, np.ndarray | FileLayout]
ProfileSource = NabCorpus | Iterable[Profile]


def score_corpus(run_scores: RunScores, corpus: ProfileSource,
                 thresholds: Mapping[str, float | Mapping] | None = None) -> dict[str, dict]:
    """Score a run (rel -> per-row scores) on the files it covers, per profile.

    Returns {profile: {score, threshold, threshold_mode, raw_score, null_score, perfect_score,
    windows, windows_detected, false_positives, per_file: {rel: raw}}}. Thresholds are optimised
    unless given ({profile: value} or a previous result of this function). `corpus` is the
    NabCorpus; with precomputed FileLayouts as values, an iterable of Profiles also works.
    """
    layouts = _layouts(run_scores, corpus)
    out: dict[str, dict] = {}
    for profile in _profiles(corpus):
        if thresholds is None:
            threshold, mode = optimise_threshold(layouts.values(), profile)[0], "optimised"
        else:
            threshold, mode = _threshold_of(thresholds, profile.name), "fixed"
        per_file = {rel: score_layout(p, threshold, profile) for rel, p in layouts.items()}
        raw = sum(f.raw for f in per_file.values())
        null, perfect = baselines(layouts.values(), profile)
        out[profile.name] = {
            "score": normalise(raw, perfect, null), "threshold": threshold,
            "threshold_mode": mode, "raw_score": raw, "null_score": null,
            "perfect_score": perfect,
            "windows": sum(f.windows for f in per_file.values()),
            "windows_detected": sum(f.tp for f in per_file.values()),
            "false_positives": sum(f.fp for f in per_file.values()),
            "per_file": {rel: f.raw for rel, f in per_file.items()},
        }
    return out


def held_out_leave_one_category_out(run_scores: RunScores,
                                    corpus: ProfileSource) -> dict[str, dict]:
    """Leave-one-category-out: each category is scored with the threshold optimised on all the
    other categories; the folds' raw scores are summed and normalised over every file of the run.

    Returns {profile: {score, raw_score, null_score, perfect_score,
    folds: {category: {threshold, raw_score}}}}.
    """
    layouts = _layouts(run_scores, corpus)
    categories = sorted({rel.split("/", 1)[0] for rel in layouts})
    out: dict[str, dict] = {}
    for profile in _profiles(corpus):
        raw, folds = 0.0, {}
        for category in categories:
            mine = [rel.split("/", 1)[0] == category for rel in layouts]
            train = [p for p, m in zip(layouts.values(), mine, strict=True) if not m]
            test = [p for p, m in zip(layouts.values(), mine, strict=True) if m]
            threshold, _ = optimise_threshold(train, profile)
            fold = sum(score_layout(p, threshold, profile).raw for p in test)
            folds[category] = {"threshold": threshold, "raw_score": fold}
            raw += fold
        null, perfect = baselines(layouts.values(), profile)
        out[profile.name] = {"score": normalise(raw, perfect, null), "raw_score": raw,
                             "null_score": null, "perfect_score": perfect, "folds": folds}
    return out


def load_run(run_dir: Path, corpus: NabCorpus, files: Sequence[str] | None = None,
             allow_missing: bool = False) -> dict[str, np.ndarray]:
    """Per-row scores of a run laid out as `<run_dir>/<category>/<file>.csv`.

    `files` (default: the whole corpus) are the relative names to read; a missing one is an
    error unless `allow_missing`. Each file is checked against its data file (row count and
    timestamps, row by row); a mismatch raises ValueError naming the file and row.
    """
    run_dir = Path(run_dir)
    out: dict[str, np.ndarray] = {}
    missing = []
    for rel in files if files is not None else corpus.files:
        path = run_dir / rel
        if not path.is_file():
            missing.append(rel)
            continue
        out[rel] = read_run_scores(path, corpus.load(rel))
    if missing and not allow_missing:
        raise FileNotFoundError(f"{run_dir}: {len(missing)} result file(s) missing, "
                                f"e.g. {missing[:3]}")
    return out


def _layouts(run_scores: RunScores, corpus: ProfileSource) -> dict[str, FileLayout]:
    """FileLayouts in sorted file order (the order the sweep concatenates them)."""
    out: dict[str, FileLayout] = {}
    for rel in sorted(run_scores):
        value = run_scores[rel]
        if isinstance(value, FileLayout):
            out[rel] = value
        elif isinstance(corpus, NabCorpus):
            out[rel] = layout(corpus.load(rel), value)
        else:
            raise TypeError(f"{rel}: raw scores need a NabCorpus to find the windows")
    return out


def _profiles(corpus: ProfileSource) -> tuple[Profile, ...]:
    if isinstance(corpus, NabCorpus):
        return corpus.profiles
    if isinstance(corpus, Mapping):
        return tuple(corpus.values())
    return tuple(corpus)


def _threshold_of(thresholds: Mapping[str, float | Mapping], name: str) -> float:
    if name not in thresholds:
        raise KeyError(f"no threshold for profile {name}")
    value = thresholds[name]
    return float(value["threshold"] if isinstance(value, Mapping) else value)

"""The printed result of a corpus bench: scores shipped and swept, windows, false alerts."""

from __future__ import annotations

from detector.bench.run import OURS, ZSCORE

PROFILE_LABELS = {"standard": "standard", "reward_low_FP_rate": "low FP",
                  "reward_low_FN_rate": "low FN"}


def render_corpus_table(summary: dict, root: str = "") -> str:
    """Every number of `summary` (run_corpus_bench's) as text for a terminal."""
    ours, theirs = summary["detectors"][OURS], summary["detectors"][ZSCORE]
    lines = [f"corpus {root}: {summary['files']} files, {summary['rows']:,} rows, "
             f"{summary['scored_rows']:,} scored ({summary['stream_days']:.1f} stream-days), "
             f"{summary['windows']} label windows",
             f"shipped thresholds: {OURS} {ours['shipped_threshold']:g} "
             f"(DETECTOR_ALERT_THRESHOLD), {ZSCORE} {theirs['shipped_threshold']:g} (fixed; "
             f"window {theirs['window']} rows)", "",
             f"{'profile':<10}{OURS + ' shipped':>24}{'swept (threshold)':>22}"
             f"{'z-score shipped':>18}{'swept (threshold)':>22}", "-" * 96]
    for profile, label in _profiles(ours).items():
        a, b = ours["shipped"][profile], ours["swept"][profile]
        c, d = theirs["shipped"][profile], theirs["swept"][profile]
        lines.append(f"{label:<10}{_num(a['score']):>24}{_swept(b):>22}{_num(c['score']):>18}"
                     f"{_swept(d):>22}")
    lines += ["", f"{'run':<36}{'windows caught':>16}{'false alerts':>14}{'/1000 rows':>12}"
              f"{'/stream-day':>13}{'clean /stream-day':>19}", "-" * 110]
    for name, result in ((OURS, ours), (ZSCORE, theirs)):
        for mode in ("shipped", "swept"):
            e = result[mode]["standard"] if "standard" in result[mode] else next(
                iter(result[mode].values()))
            how = (f"shipped {result['shipped_threshold']:g}" if mode == "shipped"
                   else f"swept {e['threshold']:.4g}")
            lines.append(f"{name + ', ' + how:<36}"
                         f"{str(e['windows_detected']) + '/' + str(e['windows']):>16}"
                         f"{e['false_positives']:>14}{_num(e['fp_per_1000'], 3):>12}"
                         f"{_num(e['fp_per_stream_day'], 3):>13}"
                         f"{_num(e['clean_fp_per_stream_day'], 3):>19}")
    lines.append("(swept rows: the standard profile's threshold; clean = files without a "
                 "label window)")
    if len(ours["categories"]) > 1:
        lines += ["", f"{'category, shipped threshold':<30}{'files':>6}"
                  f"{OURS + ' caught':>22}{'FP/stream-day':>15}{'z-score caught':>16}"
                  f"{'FP/stream-day':>15}", "-" * 104]
        for category, mine in ours["categories"].items():
            z = theirs["categories"][category]
            lines.append(f"{category or '(top level)':<30}{mine['files']:>6}"
                         f"{_caught(mine):>22}{_num(mine['fp_per_stream_day'], 3):>15}"
                         f"{_caught(z):>16}{_num(z['fp_per_stream_day'], 3):>15}")
    lines += ["", "HitRate@100% / @150% (alerts at the shipped threshold inside incidents of "
              "root_cause.json):", f"  {OURS}: {_hit(ours['hitrate'])}",
              f"  {ZSCORE}: {_hit(theirs['hitrate'])}"]
    if summary.get("subset"):
        lines.append(f"subset of {summary['files']} files: not comparable with full-corpus "
                     "numbers")
    if "wall_time_s" in summary:
        lines.append(f"wall time {summary['wall_time_s']:.1f}s (replay {summary['replay_s']:.1f}s)")
    return "\n".join(lines)


def _profiles(result: dict) -> dict[str, str]:
    return {p: PROFILE_LABELS.get(p, p) for p in result["swept"]}


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _swept(entry: dict) -> str:
    return f"{_num(entry['score'])} ({entry['threshold']:.4g})"


def _caught(c: dict) -> str:
    return f"{c['windows_detected']}/{c['windows']}"


def _hit(value: dict | str) -> str:
    if isinstance(value, str):
        return value
    if value["hitrate@100"] is None:
        return "n/a (no alert inside a labelled incident)"
    return (f"{value['hitrate@100']:.3f} / {value['hitrate@150']:.3f} over {value['alerts']} "
            "alerts")

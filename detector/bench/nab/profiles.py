"""NAB's scoring profiles: the cost-matrix weights (A_TP, A_FP, A_FN) each profile scores with.

NAB_PROFILES is the one built-in table (NAB v1.1 config/profiles.json); a corpus may bring its
own config/profiles.json, read by `load_profiles`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PROFILES_JSON = "config/profiles.json"


@dataclass(frozen=True)
class Profile:
    """Cost-matrix weights of one scoring profile (A_TP, A_FP, A_FN)."""

    name: str
    tp: float
    fp: float
    fn: float


NAB_PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)
PROFILE_NAMES = tuple(p.name for p in NAB_PROFILES)


def load_profiles(root: Path) -> dict[str, Profile]:
    """Profiles from ROOT/config/profiles.json: NAB's three first (in NAB_PROFILES' order),
    then any others in the file's order."""
    raw = json.loads((Path(root) / PROFILES_JSON).read_text())
    names = [n for n in PROFILE_NAMES if n in raw] + [n for n in raw if n not in PROFILE_NAMES]
    out = {}
    for name in names:
        cm = raw[name]["CostMatrix"]
        out[name] = Profile(name, float(cm["tpWeight"]), float(cm["fpWeight"]),
                            float(cm["fnWeight"]))
    return out


def corpus_profiles(root: Path) -> tuple[Profile, ...]:
    """The profiles a corpus scores with: its config/profiles.json, else NAB's three."""
    if (Path(root) / PROFILES_JSON).is_file():
        return tuple(load_profiles(root).values())
    return NAB_PROFILES

"""The feature spec: which features exist, in which column order, with which parameters.

One ``FeatureSpec`` is fitted on training data (vocabularies, numeric attribute names, source
names), saved as JSON next to the ranker model and loaded by the service, so training and
serving build exactly the same columns. ``names`` is the column order of every feature matrix
(offline and online); ``categorical`` lists the columns LightGBM treats as categories.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from winnow.core.errors import BundleError

SPEC_VERSION = 1
DAY = 86_400.0

# popularity windows (name -> seconds); "all" is always added
DEFAULT_WINDOWS: dict[str, int] = {"1h": 3_600, "1d": 86_400, "7d": 604_800}


@dataclass
class FeatureSpec:
    """Parameters and vocabularies of the feature set (JSON round-trippable).

    Attributes:
        sources: retrieval source names; each gives ``src_<name>_score|rank|rel|lrank|z``
            columns (raw score, rank in its own top list, score / list best, rank among the
            list's candidates as a fraction, z-score within the list).
        windows: popularity window name -> length in seconds.
        half_life_s: half-life of the exponentially decayed engagement sums.
        activity_window_s: window of the "recent activity" user feature.
        item_numeric: numeric item attribute names (from items.attributes).
        user_numeric: numeric user attribute names (e.g. age).
        user_categorical: categorical user attribute name -> vocabulary (code = position).
        devices: context device vocabulary (code = position).
        numeric_bins: numeric user attribute -> bin edges; its bins are peer groups, like the
            categorical attributes, for the "item popularity among the user's peers" features.
    """

    sources: list[str]
    windows: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    half_life_s: float = 30 * DAY
    activity_window_s: int = 7 * 86_400
    item_numeric: list[str] = field(default_factory=list)
    user_numeric: list[str] = field(default_factory=list)
    user_categorical: dict[str, list[str]] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    numeric_bins: dict[str, list[float]] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """User attributes that define peer groups (categorical ones, and binned numeric ones)."""
        return list(self.user_categorical) + list(self.numeric_bins)

    @property
    def names(self) -> list[str]:
        """Column names, in matrix order."""
        out: list[str] = []
        for s in self.sources:
            out += [f"src_{s}_score", f"src_{s}_rank", f"src_{s}_rel", f"src_{s}_lrank", f"src_{s}_z"]
        out += ["src_count"]
        out += ["cat_count_max", "cat_count_sum", "cat_rate_max", "cat_decay_max", "cat_decay_sum",
                "cat_days_since", "item_n_categories"]
        out += ["creator_count", "creator_rate", "creator_decay", "creator_days_since"]
        out += [f"pop_{w}" for w in self.windows] + ["pop_all", "pop_trend", "pop_user_span",
                                                      "pop_user_span_share"]
        out += ["item_age_days", "user_pref_age_days", "item_age_vs_pref"]
        out += ["user_pop_pref", "item_pop_vs_pref"]
        for a in self.item_numeric:
            out += [f"item_{a}", f"user_mean_{a}", f"item_{a}_vs_user"]
        for g in self.groups:
            out += [f"peer_{g}_pop", f"peer_{g}_share", f"peer_{g}_lift"]
        out += ["user_events", "user_events_recent", "user_days_active", "user_days_since_last"]
        out += [f"user_{a}" for a in self.user_numeric]
        out += [f"user_{a}" for a in self.user_categorical]
        out += ["ctx_hour", "ctx_weekday", "ctx_device"]
        return out

    @property
    def categorical(self) -> list[str]:
        """Columns holding category codes (NaN = unknown)."""
        return [f"user_{a}" for a in self.user_categorical] + ["ctx_device", "ctx_weekday"]

    def device_code(self, device: str | None) -> float:
        """Code of a device name; NaN for None or a device not seen in training."""
        if device is None:
            return float("nan")
        try:
            return float(self.devices.index(device))
        except ValueError:
            return float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"version": SPEC_VERSION, **asdict(self), "names": self.names}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str = "feature spec") -> FeatureSpec:
        """Inverse of to_json; BundleError when the version or the column list disagree."""
        if not isinstance(data, dict) or data.get("version") != SPEC_VERSION:
            raise BundleError(f"{source}: feature spec version {data.get('version') if isinstance(data, dict) else None!r}"
                              f" is not {SPEC_VERSION}")
        body = {k: v for k, v in data.items() if k not in ("version", "names")}
        try:
            spec = cls(**body)
        except TypeError as exc:
            raise BundleError(f"{source}: bad feature spec: {exc}") from None
        if "names" in data and data["names"] != spec.names:
            raise BundleError(f"{source}: stored column names differ from this winnow version's")
        return spec

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"feature spec missing: {p}") from None
        except json.JSONDecodeError as exc:
            raise BundleError(f"{p}: invalid JSON: {exc}") from None
        return cls.from_json(data, source=str(p))

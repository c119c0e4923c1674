"""Feedback-loop metrics per round, and the JSON + PNG report over rounds and policies.

Per round (all shares are of the items released at that round):
    engagement          clicks per user this round
    coverage            share of released items shown at least once this round
    gini                Gini coefficient of this round's exposure counts over released items
    never_shown         share of released items never shown in any round so far
    train_concentration share of the training log's clicks on the top 10% most-clicked items
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.interactions import Interactions


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: equal exposure, -> 1: one item gets all)."""
    x = np.sort(np.asarray(counts, np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def top_share(counts: np.ndarray, share: float = 0.1) -> float:
    """Fraction of the total held by the top ``share`` of entries."""
    x = np.sort(np.asarray(counts, np.float64))[::-1]
    if x.sum() == 0:
        return 0.0
    top = max(1, int(np.ceil(share * len(x))))
    return float(x[:top].sum() / x.sum())


def round_metrics(round_: int, *, clicks: np.ndarray, shown: np.ndarray, released: np.ndarray,
                  ever_shown: np.ndarray, train: Interactions, n_users: int) -> dict[str, float]:
    """Metrics of one round (see module docstring). shown: int item indices served this round."""
    exposure = np.bincount(shown, minlength=len(released)).astype(np.float64)
    rel = np.flatnonzero(released)
    train_counts = np.bincount(train.item, minlength=len(released))[rel]
    return {"round": round_, "engagement": float(clicks.sum() / n_users),
            "coverage": float((exposure[rel] > 0).mean()), "gini": gini(exposure[rel]),
            "never_shown": float((~ever_shown[rel]).mean()),
            "train_concentration": top_share(train_counts, 0.1), "catalog": int(len(rel))}


def summarise(run: dict[str, Any], *, last: int = 10) -> dict[str, float]:
    """Final-round coverage and mean engagement over the last ``last`` rounds (long-term)."""
    rounds = run["rounds"]
    tail = rounds[-last:]
    return {"coverage_final": rounds[-1]["coverage"], "never_shown_final": rounds[-1]["never_shown"],
            "gini_final": rounds[-1]["gini"],
            "engagement_long_term": float(np.mean([r["engagement"] for r in tail])),
            "engagement_total": float(np.sum([r["engagement"] for r in rounds]))}


def write_report(runs: dict[str, dict[str, Any]], directory: str | Path, *, extra: dict[str, Any] | None = None,
                 plot_name: str = "simulation") -> dict[str, Path]:
    """Write ``<directory>/<plot_name>.json`` and ``<plot_name>_{coverage,engagement}.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = {"runs": runs, "summary": {name: summarise(run) for name, run in runs.items()}, **(extra or {})}
    paths = {"json": d / f"{plot_name}.json"}
    paths["json"].write_text(json.dumps(out, indent=2), encoding="utf-8")
    panels = {"coverage": [("coverage", "catalog coverage (shown this round)"),
                           ("never_shown", "share of catalog never shown"),
                           ("gini", "Gini of exposure"),
                           ("train_concentration", "training clicks on top-10% items")],
              "engagement": [("engagement", "clicks per user per round")]}
    for key, metrics in panels.items():
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
        for ax, (metric, title) in zip(axes[0], metrics):
            for name, run in runs.items():
                ax.plot([r["round"] for r in run["rounds"]], [r[metric] for r in run["rounds"]], label=name)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("round")
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        paths[key] = d / f"{plot_name}_{key}.png"
        fig.savefig(paths[key], dpi=100)
        plt.close(fig)
    return paths

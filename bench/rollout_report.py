"""bench/rollout.py's summary (per challenger and policy, over the seeds), its table and its PNG."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def policy(run: dict[str, Any], canary_plan: str) -> str:
    """The row a run belongs to: "canary <plan>" or "50/50 (plan 50,100)"."""
    return f"canary {run['plan']}" if run["plan"] == canary_plan else f"50/50 (plan {run['plan']})"


def _mean(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 3) if vals else None


def summarise(runs: list[dict[str, Any]], canary_plan: str) -> dict[str, dict[str, Any]]:
    """Per "<challenger> / <policy>": runs, correct decisions, end states and rules, and the means
    over the seeds (decided runs only for the times) of days, impressions and clicks to the
    decision and of the regrets (every run); per-seed values kept."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(f"{r['challenger']} / {policy(r, canary_plan)}", []).append(r)
    rows: dict[str, dict[str, Any]] = {}
    for key, group in groups.items():
        rows[key] = {"runs": len(group), "correct": sum(r["correct"] for r in group),
                     "states": [r["state"] for r in group], "rules": [r["rule"] for r in group],
                     "days_to_decision": _mean([r["days_to_decision"] for r in group]),
                     "days_range": [min(days), max(days)] if (days := [r["days_to_decision"] for r in group
                                                                       if r["days_to_decision"] is not None]) else None,
                     "impressions_to_decision": _mean([r["impressions_to_decision"] for r in group]),  # decided runs
                     "clicks_to_decision": _mean([r["clicks_to_decision"] for r in group]),
                     "regret": _mean([r["regret"] for r in group]),
                     "regret_5050_same_events": _mean([r["regret_5050_same_events"] for r in group]),
                     "per_seed": {str(r["seed"]): {k: r[k] for k in ("state", "rule", "days_to_decision",
                                                                      "impressions_to_decision", "regret",
                                                                      "regret_5050_same_events")} for r in group}}
    return rows


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a markdown table."""
    lines = ["| challenger / policy | correct | runs ending (rule) | days to decision, mean (min, max) | impressions (clicks) "
             "to decision | regret (expected clicks lost) | a 50/50 split over the same events |",
             "|---|---|---|---|---|---|---|"]
    for key, m in summary.items():
        ends = ", ".join(f"{n} {end}" for end, n in Counter(
            f"{s} ({r})" for s, r in zip(m["states"], m["rules"], strict=True)).items())
        lines.append(f"| {key} | {m['correct']}/{m['runs']} | {ends} | {m['days_to_decision']} ({'-'.join(map(str, m['days_range'] or []))}) | "
                     f"{m['impressions_to_decision']} ({m['clicks_to_decision']}) | {m['regret']} | "
                     f"{m['regret_5050_same_events']} |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path, ticks_per_day: int) -> Path | None:
    """One panel per challenger: each arm's metric as the decision code measured it at every look
    (canary solid, 50/50 dashed), the decisions marked (dotted line: next step, ^ promoted, v rolled back)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    challengers = list(dict.fromkeys(r["challenger"] for r in runs))
    fig, axes = plt.subplots(1, len(challengers), figsize=(5 * len(challengers), 4), sharex=True, sharey=True,
                             squeeze=False)
    for ax, who in zip(axes[0], challengers, strict=True):
        for r in (r for r in runs if r["challenger"] == who):
            style = "o-" if r["plan"] != "50,100" else "s--"
            for arm, colour in (("champion", "tab:blue"), ("challenger", "tab:orange")):
                xs = [(h["round"] + 1) / ticks_per_day for h in r["looks"]]
                ax.plot(xs, [h["metric"].get(arm) for h in r["looks"]], style, color=colour, markersize=3,
                        label=f"{arm}, plan {r['plan']}")
            for d in r["decisions"]:
                x = (d["round"] + 1) / ticks_per_day
                mark = {"promoted": "^", "rolled_back": "v", "halted": "x"}.get(d["state"])
                if mark is None:  # the next step: a dotted line
                    ax.axvline(x, color="grey", linestyle=":" if r["plan"] != "50,100" else "-.", linewidth=0.8)
                    continue
                y = d["metric"].get("challenger")
                ax.plot(x, y if y is not None else 0, mark, color="k", markersize=11, markerfacecolor="none")
        truth = "better" if runs and next(r for r in runs if r["challenger"] == who)["challenger_better"] else "worse"
        ax.set_title(f"{who} challenger (truth: {truth})", fontsize=9)
        ax.set_xlabel("simulated days since the rollout started")
        ax.set_xlim(left=0)
    axes[0][0].set_ylabel("CTR per exposed user (the decision code's metric)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("canary (solid) vs immediate 50/50 (dashed): each arm's metric at each look; dotted: next step, "
                 "^ promoted, v rolled back", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

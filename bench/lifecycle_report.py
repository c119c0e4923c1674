"""Figures of bench/lifecycle.py's runs: per-strategy summary, the gate against the simulated
truth, the canary's outcomes, the across-seeds table and the PNG (the loop itself is in
bench/lifecycle.py; the canary's serving and decisions in bench/lifecycle_canary.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lifecycle_canary import summarise_canary


def summarise(res: dict[str, Any], shift: int, never: dict[str, Any] | None) -> dict[str, Any]:
    eng = np.array([r["engagement"] for r in res["rounds"]])
    base = np.array([r["engagement"] for r in never["rounds"]]) if never else None
    pre = float(eng[max(0, shift - 5):shift].mean())
    post = eng[shift:]
    after = [c for c in res["cycles"] if c["round"] >= shift]
    fired = [c for c in res["drift_checks"] if c["fired"]]
    first = next((c for c in fired if c["round"] >= shift), None)
    kinds = [k for k in ("data", "concept") if first and first[f"{k}_drift"]]
    flagged = {k: next((c["round"] - shift for c in res["drift_checks"] if c["round"] >= shift and c.get(f"{k}_drift")),
                       None) for k in ("data", "concept")}
    return {"engagement_pre_shift": round(pre, 4), "engagement_trough": round(float(post.min()), 4),
            "engagement_last5": round(float(eng[-5:].mean()), 4),
            "recovered_share": round(float(eng[-5:].mean()) / pre, 3) if pre > 0 else None,
            "engagement_post_shift_mean": round(float(post.mean()), 4),
            "post_shift_vs_never": round(float(post.mean() / base[shift:].mean()), 3) if base is not None else None,
            "rounds_to_first_cycle_after_shift": (after[0]["round"] - shift) if after else None,
            "rounds_to_detect": (first["round"] - shift) if first else None,
            "drift_kinds_at_detection": kinds, "rounds_to_flag_by_kind": flagged,
            "false_alarms_before_shift": sum(c["round"] < shift for c in fired),
            "gate_failed": sum(c["gate_passed"] is False for c in res["cycles"]),
            "cycles": len(res["cycles"]), "cycles_activated": sum(c["action"] == "activated" for c in res["cycles"]),
            "cycle_wall_s_mean": round(float(np.mean([c["wall_s"] for c in res["cycles"]])), 2) if res["cycles"] else None,
            "cycle_wall_s_total": round(float(sum(c["wall_s"] for c in res["cycles"])), 1),
            **gate_vs_truth(res["cycles"]),
            **(summarise_canary(res["rounds"], res["canary_decisions"], res["canary_look_s"])
               if res["strategy"].endswith("_canary") else {})}


def gate_vs_truth(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the gate's verdict agreed with the simulated truth (the challenger's slates'
    expected engagement >= the champion's): cycles judged, wrongly failed, wrongly passed."""
    judged = [c for c in cycles if c.get("true_engagement") and c["gate_passed"] is not None]
    better = [c["true_engagement"]["challenger"] >= c["true_engagement"]["champion"] for c in judged]
    return {"gate_judged": len(judged),
            "gate_failed_better": sum(not c["gate_passed"] and b for c, b in zip(judged, better, strict=True)),
            "gate_passed_worse": sum(c["gate_passed"] and not b for c, b in zip(judged, better, strict=True))}


ACROSS = ("engagement_post_shift_mean", "post_shift_vs_never", "recovered_share", "engagement_trough",
          "rounds_to_detect", "false_alarms_before_shift", "cycles", "gate_failed", "cycle_wall_s_mean",
          "gate_judged", "gate_failed_better", "gate_passed_worse", "canaries", "promoted", "rolled_back",
          "halted", "engagement_during_canary", "engagement_champion_arm", "engagement_challenger_arm")


def across_seeds(summaries: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per strategy and figure of ``ACROSS``: mean, std and the per-seed values (None where a seed
    has no value, e.g. a shift never detected; mean and std over the seeds that have one)."""
    out: dict[str, dict[str, Any]] = {}
    for strategy in next(iter(summaries.values())):
        figs = {}
        for key in ACROSS:
            vals = [summaries[seed][strategy].get(key) for seed in summaries]
            have = np.array([v for v in vals if v is not None], np.float64)
            figs[key] = {"mean": round(float(have.mean()), 4) if len(have) else None,
                         "std": round(float(have.std()), 4) if len(have) else None, "per_seed": vals}
        out[strategy] = figs
    return out


def plot(results: dict[str, dict[str, Any]], shift: int, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, res in results.items():
        ax.plot([r["engagement"] for r in res["rounds"]], label=name)
        for c in res["cycles"]:
            ax.axvline(c["round"], alpha=0.15, color=ax.lines[-1].get_color())
        for d in res.get("canary_decisions", []):  # canary ends: promoted ^, rolled back / halted v
            if d["state"] in ("promoted", "rolled_back", "halted"):
                ax.plot(d["round"], res["rounds"][d["round"]]["engagement"], "^" if d["state"] == "promoted" else "v",
                        color=ax.lines[-1].get_color(), markersize=7)
    ax.axvline(shift, color="k", linestyle="--", label="taste shift")
    ax.set_xlabel("round (day)")
    ax.set_ylabel("clicks per user")
    ax.legend()
    ax.set_title("autopilot: never / schedule / drift-triggered retraining (+ canary: ^ promoted, v rolled back)",
                 fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path

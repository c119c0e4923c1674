"""A/B tests: sticky assignment, per-user metrics from the logs, and their statistics.

Assignment: a user's bucket is sha256("<salt>:<experiment>:<user_id>") read as a number in
[0, 1); variants own consecutive slices of [0, 1) in config order, sized by ``traffic``. The
same user always lands in the same variant; changing the salt re-randomises.

Metrics are per user (the randomisation unit), so the per-user values are independent draws
and Welch's t statistics apply: ``shown`` (items served), ``clicks``, ``conversions``
(purchases), ``engagement`` (positive events: every type except view and skip), ``revenue``
(sum of purchase values where events carry one) and ``ctr`` = clicks / shown.
CUPED (Deng et al. 2013) subtracts theta * (x - mean x) with x the user's pre-period value of
the same metric and theta = cov(y, x) / var(x) pooled over variants; it leaves the difference
in means unbiased and shrinks its variance by the factor (1 - corr(y, x)^2).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from winnow.core.config import ExperimentConfig
from winnow.core.errors import DataError
from winnow.data.store import Store

METRICS = ("ctr", "clicks", "conversions", "engagement", "revenue")
_NOT_ENGAGEMENT = {"view", "skip", "impression"}


def bucket(user_id: str, *, experiment: str, salt: str = "") -> float:
    """The user's position in [0, 1) for this experiment (uniform, deterministic)."""
    digest = hashlib.sha256(f"{salt}:{experiment}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(user_id: str, experiment: ExperimentConfig) -> str:
    """Sticky variant name of ``user_id`` in ``experiment`` (ExperimentConfig.variant_of)."""
    return experiment.variant_of(user_id)


def is_active(experiment: ExperimentConfig, now: datetime) -> bool:
    """Whether ``now`` (timezone-aware) lies in [start, end) (ExperimentConfig.active)."""
    return experiment.active(now)


def user_metrics(exposures: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per-user metrics.

    Args:
        exposures: one row per exposed user: user_id, variant, shown (items served; NaN if unknown).
        events: user_id, event_type, value (NaN when absent) within the analysis window.
    Returns:
        exposures' columns plus clicks, conversions, engagement, revenue, ctr (one row per user).
    """
    for col in ("user_id", "variant", "shown"):
        if col not in exposures.columns:
            raise DataError("missing column", source="exposures", field=col)
    ev = events[events["user_id"].isin(exposures["user_id"])]
    t = ev["event_type"].astype(str)
    per = pd.DataFrame({
        "user_id": ev["user_id"],
        "clicks": (t == "click").astype(float),
        "conversions": (t == "purchase").astype(float),
        "engagement": (~t.isin(_NOT_ENGAGEMENT)).astype(float),
        "revenue": np.where((t == "purchase") & ev["value"].notna(), ev["value"].fillna(0.0), 0.0),
    }).groupby("user_id").sum()
    out = exposures.merge(per, left_on="user_id", right_index=True, how="left")
    for col in ("clicks", "conversions", "engagement", "revenue"):
        out[col] = out[col].fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ctr"] = np.where(out["shown"] > 0, out["clicks"] / out["shown"], np.nan)
    return out


@dataclass(frozen=True)
class Comparison:
    """Treatment minus control on one per-user metric (Welch), optionally CUPED-adjusted."""

    metric: str
    control: str
    treatment: str
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    relative_diff: float
    cuped: bool = False
    variance_reduction: float = 0.0  # 1 - var(adjusted) / var(raw), pooled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def welch(control: np.ndarray, treatment: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(diff of means treatment - control, CI low, CI high, two-sided p) by Welch's t-test."""
    c = np.asarray(control, np.float64)
    t = np.asarray(treatment, np.float64)
    if len(c) < 2 or len(t) < 2:
        raise DataError(f"need >= 2 users per variant, got {len(c)} and {len(t)}", source="ab")
    res = stats.ttest_ind(t, c, equal_var=False)
    ci = res.confidence_interval(confidence)
    return float(t.mean() - c.mean()), float(ci.low), float(ci.high), float(res.pvalue)


def cuped(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """CUPED-adjusted y = y - theta (x - mean x) with theta = cov(y, x) / var(x); returns (y', theta)."""
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    vx = x.var()
    theta = float(np.cov(y, x, ddof=0)[0, 1] / vx) if vx > 0 else 0.0
    return y - theta * (x - x.mean()), theta


def compare(frame: pd.DataFrame, metric: str, *, control: str, treatment: str,
            covariate: str | None = None, confidence: float = 0.95) -> Comparison:
    """Welch comparison of ``metric`` between two variants of ``frame`` (one row per user).

    With ``covariate`` (a pre-period column), the metric is CUPED-adjusted first (theta pooled
    over both variants). Users whose metric is NaN (e.g. ctr with nothing shown) are dropped.
    """
    if metric not in frame.columns:
        raise DataError("unknown metric", source="ab", field=metric)
    sub = frame[frame["variant"].isin([control, treatment]) & frame[metric].notna()]
    y = sub[metric].to_numpy(np.float64)
    reduction = 0.0
    if covariate is not None:
        x = sub[covariate].fillna(0.0).to_numpy(np.float64)
        adj, _ = cuped(y, x)
        reduction = 1.0 - adj.var() / y.var() if y.var() > 0 else 0.0
        y = adj
    is_t = (sub["variant"] == treatment).to_numpy()
    diff, lo, hi, p = welch(y[~is_t], y[is_t], confidence=confidence)
    mc = float(sub.loc[~is_t, metric].mean())
    mt = float(sub.loc[is_t, metric].mean())
    return Comparison(metric, control, treatment, int((~is_t).sum()), int(is_t.sum()), mc, mt, diff,
                      lo, hi, p, diff / mc if mc else float("nan"), covariate is not None, reduction)


def sample_ratio_mismatch(counts: dict[str, int], expected: dict[str, float]) -> tuple[float, float]:
    """Chi-square test of observed users per variant against the configured traffic split.

    Returns (chi2, p); a tiny p (e.g. < 0.001) means assignment or logging is broken.
    """
    names = list(expected)
    obs = np.array([counts.get(n, 0) for n in names], np.float64)
    exp = np.array([expected[n] for n in names], np.float64) * obs.sum()
    res = stats.chisquare(obs, exp)
    return float(res.statistic), float(res.pvalue)


def report(frame: pd.DataFrame, experiment: ExperimentConfig, *, metrics: tuple[str, ...] = METRICS,
           confidence: float = 0.95) -> dict[str, Any]:
    """Every treatment against control on each metric (CUPED where ``pre_<metric>`` exists), plus SRM."""
    control = experiment.control or experiment.variants[0].name
    counts = frame["variant"].value_counts().to_dict()
    chi2, p_srm = sample_ratio_mismatch(counts, {v.name: v.traffic for v in experiment.variants})
    rows = []
    for var in experiment.variants:
        if var.name == control:
            continue
        for m in metrics:
            values = frame[m].dropna()
            if values.nunique() < 2:  # constant (e.g. no revenue logged): nothing to compare
                continue
            cov = f"pre_{m}" if f"pre_{m}" in frame.columns else None
            rows.append(compare(frame, m, control=control, treatment=var.name, covariate=cov,
                                confidence=confidence).to_dict())
    return {"experiment": experiment.name, "control": control, "users": {k: int(v) for k, v in counts.items()},
            "srm": {"chi2": chi2, "p_value": p_srm, "mismatch": p_srm < 0.001}, "comparisons": rows}


def _event_frame(log: Any) -> pd.DataFrame:
    """EventLog (store codes) -> DataFrame of user_id, event_type, value."""
    return pd.DataFrame({"user_id": np.asarray(log.user_ids, dtype=object)[log.user] if len(log) else [],
                         "event_type": np.asarray(log.event_types, dtype=object)[log.event_type]
                         if len(log) else [],
                         "value": np.asarray(log.value, np.float64)})


def experiment_frame(store: Store, experiment: ExperimentConfig, *, pre_days: float = 14.0,
                     logged_only: bool = False) -> pd.DataFrame:
    """Per-user metrics of ``experiment`` from the store, with pre-period covariates.

    Exposed users: those with an impression in [start, end); their variant is the one the
    service logged in the impression's ``context["experiments"][name]`` (their first) when
    present, else the hash assignment; with ``logged_only`` impressions that logged no variant
    are left out (a rollout's, winnow.rollout.experiment). ``shown`` counts the items served to them. Events in [start, end) give
    the metrics; events in [start - pre_days, start) give ``pre_<metric>`` (CUPED covariates).
    Without any impression in the window, users with events there count as exposed (shown NaN).
    """
    start = int(experiment.start.timestamp()) if experiment.start is not None else None
    end = int(experiment.end.timestamp()) if experiment.end is not None else None
    shown: dict[str, float] = {}
    variant: dict[str, str] = {}
    for imp in store.read_impressions(since=start):
        if end is not None and imp["timestamp"] >= end:
            continue
        uid = str(imp["user_id"])
        logged = ((imp.get("context") or {}).get("experiments") or {}).get(experiment.name)
        if logged_only and not logged:
            continue
        shown[uid] = shown.get(uid, 0.0) + len(imp["items"])
        variant.setdefault(uid, str(logged) if logged else assign(uid, experiment))
    events = _event_frame(store.read_events(since=start, until=end))
    if not shown and not logged_only:
        users = sorted(set(events["user_id"]))
        exposures = pd.DataFrame({"user_id": users, "variant": [assign(u, experiment) for u in users],
                                  "shown": np.nan})
    else:
        exposures = pd.DataFrame({"user_id": list(shown), "variant": [variant[u] for u in shown],
                                  "shown": list(shown.values())})
    if exposures.empty:
        raise DataError(f"no exposed users for experiment {experiment.name!r} in its window", source="store")
    frame = user_metrics(exposures, events)
    if start is not None and pre_days > 0:
        pre = user_metrics(exposures.assign(shown=np.nan),
                           _event_frame(store.read_events(since=int(start - pre_days * 86400), until=start)))
        for m in ("clicks", "conversions", "engagement", "revenue"):
            frame[f"pre_{m}"] = pre[m].to_numpy()
    return frame


def format_report(rep: dict[str, Any]) -> str:
    """Plain-text table of a report()."""
    lines = [f"experiment {rep['experiment']}: users {rep['users']}; SRM chi2={rep['srm']['chi2']:.2f} "
             f"p={rep['srm']['p_value']:.3g}{'  << SAMPLE RATIO MISMATCH' if rep['srm']['mismatch'] else ''}",
             f"{'variant':<16}{'metric':<13}{'control':>10}{'treatment':>11}{'diff':>11}{'95% CI':>24}"
             f"{'p':>9}{'CUPED':>7}"]
    for r in rep["comparisons"]:
        ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
        vr = f"-{r['variance_reduction']:.0%}" if r["cuped"] else ""
        lines.append(f"{r['treatment']:<16}{r['metric']:<13}{r['mean_control']:>10.4g}{r['mean_treatment']:>11.4g}"
                     f"{r['diff']:>11.4g}{ci:>24}{r['p_value']:>9.3g}{vr:>7}")
    return "\n".join(lines)


def plot_report(rep: dict[str, Any], path: str | Path) -> Path:
    """Bar-and-whisker PNG: relative difference (with CI) of each metric per treatment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rep["comparisons"]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(rows))))
    labels, mids, errs = [], [], []
    for r in rows:
        base = r["mean_control"] or 1.0
        labels.append(f"{r['treatment']}: {r['metric']}{' (CUPED)' if r['cuped'] else ''}")
        mids.append(100 * r["diff"] / base)
        errs.append([100 * (r["diff"] - r["ci_low"]) / base, 100 * (r["ci_high"] - r["diff"]) / base])
    y = np.arange(len(rows))
    ax.errorbar(mids, y, xerr=np.array(errs).T if errs else None, fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"difference vs {rep['control']} (% of control mean, 95% CI)")
    ax.set_title(f"experiment {rep['experiment']} (SRM p={rep['srm']['p_value']:.3g})")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

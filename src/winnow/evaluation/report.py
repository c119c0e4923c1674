"""`winnow evaluate --report FILE.html`: a self-contained HTML report of an offline evaluation.

``evaluate_for_report`` runs the same protocol as ``runner.evaluate_models`` (same splits, same
model fitting, training items excluded, same metric rows), fitting each model once, and also
keeps what the report plots:
- recall at several K (each K <= the deepest list recommended);
- popularity bias: the share of recommendation slots (top-k) landing in each popularity decile
  of the catalog (decile 1 = the 10% of items with the most distinct training users), next to
  each decile's share of training interactions and a uniform 10% line;
- coverage@k and novelty@k per model (from the metric rows).
``write_report`` renders an ``EvaluationResult`` plus that ``ReportExtras`` to one HTML file
with every plot embedded as a base64 PNG (matplotlib, Agg backend): no external file, no
script, opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError
from winnow.data.interactions import Dataset
from winnow.evaluation.runner import (
    EvaluationResult,
    fit_and_recommend,
    item_category_lists,
    split_dataset,
)
from winnow.metrics import per_user_metrics

DEFAULT_KS = (1, 5, 10, 20, 50, 100)
N_DECILES = 10


@dataclass
class ReportExtras:
    """Per-seed curves kept for the report (means over seeds are taken when plotting).

    recall_at: {model: {K: [recall@K per seed]}}; decile_exposure: {model: [[share of slots per
    decile] per seed]} (10 floats summing to 1); train_decile_share: [[share of training
    interactions per decile] per seed].
    """

    ks: list[int]
    recall_at: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    decile_exposure: dict[str, list[list[float]]] = field(default_factory=dict)
    train_decile_share: list[list[float]] = field(default_factory=list)


def popularity_deciles(item_users: np.ndarray) -> np.ndarray:
    """int [n_items] decile 0..9 of each item by training popularity (0 = most popular 10%);
    ties are broken by item index so deciles have equal sizes (+-1)."""
    n = len(item_users)
    order = np.lexsort((np.arange(n), -item_users))  # most popular first
    dec = np.empty(n, np.int64)
    dec[order] = (np.arange(n) * N_DECILES) // max(n, 1)
    return dec


def decile_exposure(recs: np.ndarray, deciles: np.ndarray) -> np.ndarray:
    """float64 [10]: share of the non-padding slots of ``recs`` in each popularity decile."""
    shown = recs[recs >= 0]
    counts = np.bincount(deciles[shown], minlength=N_DECILES).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def evaluate_for_report(dataset: Dataset, model_names: Sequence[str], config: WinnowConfig, *,
                        protocol: str = "random", k: int = 10, seeds: Sequence[int] = (0,),
                        ratio: float | None = None, ks: Sequence[int] = DEFAULT_KS,
                        progress: Callable[[str], None] | None = None) -> tuple[EvaluationResult, ReportExtras]:
    """``evaluate_models`` plus the report's curves; each model is fitted once per seed."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    ks = sorted({int(x) for x in ks if int(x) >= 1} | {k})
    depth = max(ks)
    result = EvaluationResult(dataset.name, protocol, {}, k)
    extras = ReportExtras(ks=ks)
    cats = item_category_lists(dataset)
    for seed in seeds:
        split = split_dataset(dataset, protocol, seed=seed, ratio=ratio)
        result.params = {key: v for key, v in split.params.items() if key != "seed"}
        train_csr = split.train.to_csr()
        item_users = np.diff((train_csr > 0).astype(np.int8).tocsc().indptr)
        deciles = popularity_deciles(item_users)
        inter = np.bincount(deciles[train_csr.indices], minlength=N_DECILES).astype(np.float64)
        extras.train_decile_share.append((inter / max(inter.sum(), 1.0)).tolist())
        for name in model_names:
            run = fit_and_recommend(split, name, config, k=k)  # exactly the runner's lists
            result.runs.append({"seed": seed, **run.metrics(k=k, item_categories=cats)})
            # deeper lists for recall@K (a top-k cut of them may break score ties differently)
            recs = run.model.recommend(run.users, depth, exclude=run.train_csr)[0] if depth > k else run.recs
            by_k = extras.recall_at.setdefault(name, {})
            for kk in ks:
                pu = per_user_metrics(run.recs if kk == k else recs, run.test_csr, k=kk, users=run.users)
                by_k.setdefault(kk, []).append(float(pu["recall"].mean()) if len(pu["recall"]) else float("nan"))
            extras.decile_exposure.setdefault(name, []).append(decile_exposure(run.recs, deciles).tolist())
            if progress:
                progress(f"seed {seed}: {name}")
    return result, extras


# --- rendering --------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(result: EvaluationResult, extras: ReportExtras) -> dict[str, str]:
    """name -> base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = result.k
    summary = result.summary()
    models = [row["model"] for row in summary]
    out: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for m in models:
        ys = [float(np.nanmean(extras.recall_at[m][kk])) for kk in extras.ks]
        ax.plot(extras.ks, ys, marker="o", label=m)
    ax.set_xscale("log")
    ax.set_xticks(extras.ks, [str(x) for x in extras.ks])
    ax.set_xlabel("K (log scale)")
    ax.set_ylabel("recall@K")
    ax.set_title("Recall at K")
    ax.grid(alpha=0.3)
    ax.legend()
    out["recall"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7.4, 3.8))
    x = np.arange(1, N_DECILES + 1)
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        share = np.mean(np.asarray(extras.decile_exposure[m]), axis=0)
        ax.bar(x - 0.4 + width * (i + 0.5), 100 * share, width=width, label=m)
    train = np.mean(np.asarray(extras.train_decile_share), axis=0)
    ax.plot(x, 100 * train, "k--", marker=".", label="training interactions")
    ax.axhline(100 / N_DECILES, color="grey", lw=0.8, ls=":", label="uniform")
    ax.set_xticks(x, [f"D{d}" for d in x])
    ax.set_xlabel("item popularity decile (D1 = most popular 10% of items)")
    ax.set_ylabel(f"% of top-{k} slots")
    ax.set_title("Popularity bias: exposure by popularity decile")
    ax.legend(fontsize=8)
    out["deciles"] = _png(fig)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for ax, metric in zip(axes, ("coverage", "novelty"), strict=True):
        key = f"{metric}@{k}"
        vals = [row.get(key, float("nan")) for row in summary]
        errs = [row.get(f"{key}_std", 0.0) for row in summary]
        ax.bar(models, vals, yerr=errs, color="#2f6fde", capsize=3)
        ax.set_title(f"{metric}@{k}")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out["coverage_novelty"] = _png(fig)
    plt.close(fig)
    return out


_CSS = """body{font:14px/1.45 system-ui,sans-serif;color:#1d2330;max-width:1100px;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{padding:.3rem .55rem;border-bottom:1px solid #e3e6ec}
th{text-align:left;color:#667085}td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
.muted{color:#667085}h2{margin-top:2rem}"""
_COLUMNS = ("recall", "precision", "ndcg", "map", "hit_rate", "mrr", "coverage", "novelty", "diversity",
            "popularity", "gini")


def _cell(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "<td class=n>–</td>"
    txt = f"{v:.2f}" if key.startswith("popularity") else f"{v:.4f}"
    if f"{key}_std" in row:
        txt += f" ±{row[f'{key}_std']:.4f}"
    return f"<td class=n>{txt}</td>"


def render_html(result: EvaluationResult, extras: ReportExtras, *, title: str | None = None) -> str:
    """The report as one HTML string (plots inline as data: URIs)."""
    k = result.k
    summary = result.summary()
    e = html.escape
    keys = [f"{c}@{k}" for c in _COLUMNS if any(f"{c}@{k}" in row for row in summary)]
    head = "".join(f"<th>{e(x)}</th>" for x in ["model", *keys, "fit s", "seeds"])
    rows = "".join(
        f"<tr><td>{e(row['model'])}</td>{''.join(_cell(row, key) for key in keys)}"
        f"<td class=n>{row['fit_seconds']:.1f}</td><td class=n>{row['seeds']}</td></tr>" for row in summary)
    rk_head = "".join(f"<th>recall@{kk}</th>" for kk in extras.ks)
    rk_rows = "".join(
        f"<tr><td>{e(m)}</td>" + "".join(f"<td class=n>{np.nanmean(extras.recall_at[m][kk]):.4f}</td>"
                                         for kk in extras.ks) + "</tr>" for m in extras.recall_at)
    dec_head = "".join(f"<th>D{d}</th>" for d in range(1, N_DECILES + 1))
    train = np.mean(np.asarray(extras.train_decile_share), axis=0)
    dec_rows = "".join(
        f"<tr><td>{e(m)}</td>" + "".join(f"<td class=n>{100 * v:.1f}%</td>"
                                         for v in np.mean(np.asarray(s), axis=0)) + "</tr>"
        for m, s in extras.decile_exposure.items())
    dec_rows += "<tr><td><i>training interactions</i></td>" + "".join(
        f"<td class=n>{100 * v:.1f}%</td>" for v in train) + "</tr>"
    plots = _plots(result, extras)
    img = lambda name, alt: f'<img alt="{e(alt)}" src="data:image/png;base64,{plots[name]}">'  # noqa: E731
    params = ", ".join(f"{e(str(a))}={e(str(b))}" for a, b in result.params.items())
    title = title or f"winnow offline evaluation: {result.dataset}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{e(title)}</h1>
<p class="muted">dataset <b>{e(result.dataset)}</b> · protocol <b>{e(result.protocol)}</b> ({params}) · top-{k} ·
{len({r['seed'] for r in result.runs})} seed(s) · generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.
Training items are excluded from the lists; users with no training or no test item are not evaluated.</p>
<h2>Metrics per model (top-{k}, mean ± std over seeds)</h2>
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<h2>Recall at several K</h2>
{img('recall', 'recall at K per model')}
<table><thead><tr><th>model</th>{rk_head}</tr></thead><tbody>{rk_rows}</tbody></table>
<h2>Popularity bias: exposure by popularity decile</h2>
<p class="muted">Share of the top-{k} slots going to each decile of the catalog ranked by distinct training users
(D1 = the most popular 10% of items). A model that follows popularity puts most of its slots in D1.</p>
{img('deciles', 'exposure by popularity decile')}
<table><thead><tr><th>model</th>{dec_head}</tr></thead><tbody>{dec_rows}</tbody></table>
<h2>Coverage and novelty</h2>
<p class="muted">coverage@{k}: distinct recommended items / catalog size. novelty@{k}: mean −log2(share of training
users who interacted with the item) over recommended items (higher = less popular items).</p>
{img('coverage_novelty', 'coverage and novelty per model')}
</body></html>
"""


def write_report(result: EvaluationResult, extras: ReportExtras, path: str | Path, *,
                 title: str | None = None) -> Path:
    """Write the HTML report atomically (temp file then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(result, extras, title=title), encoding="utf-8")
    tmp.replace(path)
    return path

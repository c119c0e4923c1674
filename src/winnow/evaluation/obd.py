"""Open Bandit Dataset (ZOZOTOWN) check of the off-policy estimators.

Protocol (Saito et al. 2020): estimate the Bernoulli Thompson Sampling (bts) policy's click
rate from the uniform-random policy's log, then compare with the click rate bts actually
logged (its on-policy value).

Target probabilities. The estimators need pi_bts(item | context, position) for every row of
the random log. The Open Bandit Pipeline obtains them by simulating BTS from its Beta
parameters; here we use the **empirical action distribution of the bts log per position**,
pi(a | pos) = #(a shown at pos) / #(rows at pos). This is valid because ZOZOTOWN's BTS is
context-free (its choice does not use the user features), so its action distribution depends
on the position only; it is approximate because (1) BTS's Beta posteriors drift over the
week, and we use the week's average, and (2) the empirical frequencies of 10k rows carry
sampling noise (items bts rarely showed get probability ~0, which IPS cannot tell from 0).
The "truth" itself is a 10k-row click rate (~40 clicks), so its own CI is reported too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from sklearn.preprocessing import OneHotEncoder

from winnow.core.errors import DataError
from winnow.evaluation.ope import LoggedSlates, cross_fit_rewards, direct_method, estimate

CAMPAIGNS = ("all", "men", "women")
_USER_COLS = [f"user_feature_{i}" for i in range(4)]
_REQUIRED = ("item_id", "position", "click", "propensity_score", *_USER_COLS)


def read_log(root: str | Path, policy: str, campaign: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The log and item_context of ``<root>/<policy>/<campaign>``; DataError names a missing column."""
    d = Path(root) / policy / campaign
    path = d / f"{campaign}.csv"
    if not path.exists():
        raise DataError("Open Bandit log not found", source=str(path))
    log = pd.read_csv(path, index_col=0)
    for col in _REQUIRED:
        if col not in log.columns:
            raise DataError("missing column", source=str(path), field=col)
    items = pd.read_csv(d / "item_context.csv", index_col=0)
    return log, items


def _features(log: pd.DataFrame, items: pd.DataFrame, actions: np.ndarray, rows: np.ndarray,
              enc: OneHotEncoder, n_actions: int) -> sp.csr_matrix:
    """Sparse features of (context of log row ``rows[i]``, action ``actions[i]``, that row's position)."""
    ctx = log.iloc[rows]
    item_ctx = items.set_index("item_id").loc[actions]
    cats = pd.DataFrame({**{c: ctx[c].to_numpy() for c in _USER_COLS},
                         "item": actions.astype(str),
                         "position": ctx["position"].to_numpy().astype(str),
                         **{f"i{j}": item_ctx[f"item_feature_{j}"].to_numpy() for j in (1, 2, 3)}})
    aff_cols = [f"user-item_affinity_{a}" for a in range(n_actions)]
    aff = log[aff_cols].to_numpy(np.float64)[rows, actions] if aff_cols[0] in log.columns else np.zeros(len(rows))
    dense = np.column_stack([aff, item_ctx["item_feature_0"].to_numpy(np.float64)])
    return sp.hstack([enc.transform(cats), sp.csr_matrix(dense)]).tocsr()


def evaluate_campaign(root: str | Path, campaign: str = "all", *, n_bootstrap: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """Estimate bts's click rate from the random log; compare with bts's logged click rate.

    Returns a dict: campaign, n_random, n_bts, truth (+ its 95% Clopper-Pearson CI), and per
    estimator value, CI, ESS, relative error and whether truth lies in the CI.
    """
    rnd, items = read_log(root, "random", campaign)
    bts, _ = read_log(root, "bts", campaign)
    n_actions = len(items)
    pos_r = rnd["position"].to_numpy() - 1
    act_r = rnd["item_id"].to_numpy()
    counts = np.zeros((n_actions, 3))
    np.add.at(counts, (bts["item_id"].to_numpy(), bts["position"].to_numpy() - 1), 1.0)
    pi_e = counts / counts.sum(axis=0, keepdims=True)  # [n_actions, 3]: P_bts(a | pos)
    n = len(rnd)
    cat_frame = pd.DataFrame({**{c: rnd[c].to_numpy() for c in _USER_COLS},
                              "item": act_r.astype(str),
                              "position": pos_r.astype(str)})
    item_ctx = items.set_index("item_id")
    for j in (1, 2, 3):
        cat_frame[f"i{j}"] = item_ctx[f"item_feature_{j}"].to_numpy()[act_r]
    enc = OneHotEncoder(handle_unknown="ignore").fit(pd.concat([
        cat_frame, pd.DataFrame({"item": np.arange(n_actions).astype(str)})]).fillna("?"))
    rows = np.arange(n)
    x_log = _features(rnd, items, act_r, rows, enc, n_actions)
    eval_rows = np.repeat(rows, n_actions)
    eval_act = np.tile(np.arange(n_actions), n)
    x_eval = _features(rnd, items, eval_act, eval_rows, enc, n_actions)
    q_log, q_eval = cross_fit_rewards(x_log, rnd["click"].to_numpy(np.float64), units=rows,
                                      x_eval=x_eval, eval_units=eval_rows, c=0.1, seed=seed)
    dm = direct_method(eval_rows, pi_e[eval_act, pos_r[eval_rows]], q_eval, units=rows)
    log = LoggedSlates(unit=rows, position=pos_r, reward=rnd["click"].to_numpy(np.float64),
                       pscore=rnd["propensity_score"].to_numpy(np.float64), target=pi_e[act_r, pos_r],
                       q_logged=q_log, dm=dm)
    clicks = int(bts["click"].sum())
    truth = clicks / len(bts)
    ci = stats.binomtest(clicks, len(bts)).proportion_ci(0.95)
    out: dict[str, Any] = {"campaign": campaign, "n_random": n, "n_bts": len(bts), "truth": truth,
                           "truth_ci": [float(ci.low), float(ci.high)],
                           "random_policy_ctr": float(rnd["click"].mean()), "estimators": {}}
    for r in estimate(log, ("ips", "snips", "dr", "dm"), n_bootstrap=n_bootstrap, seed=seed):
        out["estimators"][r.estimator] = {
            "value": r.value, "ci": [r.ci_low, r.ci_high], "ess": r.ess,
            "relative_error": abs(r.value - truth) / truth,
            "truth_in_ci": bool(r.ci_low <= truth <= r.ci_high)}
    return out


def format_table(results: list[dict[str, Any]]) -> str:
    """Markdown table of evaluate_campaign results."""
    lines = ["| campaign | estimator | estimate | 95% CI | ESS | truth (bts CTR) | rel. error | truth in CI |",
             "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for name, e in res["estimators"].items():
            lines.append(f"| {res['campaign']} | {name} | {e['value']:.5f} | [{e['ci'][0]:.5f}, {e['ci'][1]:.5f}]"
                         f" | {e['ess']:.0f} | {res['truth']:.5f} | {e['relative_error']:.1%}"
                         f" | {'yes' if e['truth_in_ci'] else 'no'} |")
    return "\n".join(lines)

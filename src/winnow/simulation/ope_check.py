"""Off-policy evaluation against simulated truth.

After ``warmup`` rounds of the loop under the logging policy, one more round is served by the
logging policy and logged (slates, per-position propensities, clicks). From that log alone,
IPS / SNIPS / DR (winnow.evaluation.ope) estimate a new policy's value (expected clicks per
user per round). The truth is the new policy's exact expected value in the same state: the
simulator knows every click probability, so truth = sum over positions and candidates of
P_target(candidate at position) * P(click | user, candidate, position), with no sampling noise.

Target policies supported: deterministic and epsilon_greedy (exact marginals), softmax
(marginals by vectorised Monte Carlo over ``n_mc_target`` Gumbel-top-k draws). Candidate scores
are rank scores, identical for users with equally long candidate lists, so the marginal
matrix P[position, rank] is computed once per list length.

DR's reward model (logistic regression, cross-fitted by user) sees what the platform knows:
position, candidate rank, the item's click count in the training log, and the decayed count of
times this user was shown the item (computable from the impression log; the simulator uses
the same decay as its fatigue).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.evaluation.ope import LoggedSlates, cross_fit_rewards, direct_method, estimate
from winnow.pipeline.explore import build_policy, rank_marginals
from winnow.simulation.loop import _sim_config, _with_mc, candidate_lists, fit_model, policy_spec, serve
from winnow.simulation.users import SimulationConfig, UserWorld


def ope_check(logging: str | Mapping[str, Any], target: str | Mapping[str, Any],
              config: SimulationConfig, *, warmup: int = 5, model: str = "als",
              winnow_config: WinnowConfig | None = None, requests: int = 5,
              n_bootstrap: int = 500) -> dict[str, Any]:
    """Estimate ``target``'s value from ``logging``'s log and compare with the simulated truth.

    ``requests`` slates per user are logged in the evaluation round (the same state, fresh
    seeds); units are slates, and the cross-fitting folds group a user's slates together.
    """
    log_spec, tgt_spec = policy_spec(logging), policy_spec(target)
    wcfg = _sim_config(winnow_config)
    world = UserWorld(config)
    ou, oi = world.organic_log()
    # warm-up: the loop under the logging policy, replayed in this world
    log_u, log_i = [ou], [oi]
    for r in range(warmup):
        m, train = fit_model(model, world, np.concatenate(log_u), np.concatenate(log_i), wcfg)
        served = serve(build_policy(_with_mc(log_spec, config)), candidate_lists(m, world, train.to_csr(binary=True)),
                       k=config.k, round_=r)
        ok = served.items >= 0
        clicks = world.respond(served.users, np.where(ok, served.items, 0)) & ok
        log_u.append(np.repeat(served.users, config.k).reshape(served.items.shape)[clicks].astype(np.int32))
        log_i.append(served.items[clicks].astype(np.int32))
        world.step()
    m, train = fit_model(model, world, np.concatenate(log_u), np.concatenate(log_i), wcfg)
    cands = candidate_lists(m, world, train.to_csr(binary=True))
    pol = build_policy(_with_mc(log_spec, config))
    reps = [serve(pol, cands, k=config.k, round_=warmup, salt=f"ope{r}:") for r in range(requests)]
    n_users, k = reps[0].items.shape
    slates = np.vstack([s.items for s in reps])          # [R * n_users, k]; unit = row
    pscore = np.vstack([s.propensity for s in reps])
    users = np.tile(np.arange(n_users), requests)      # user of each unit
    n = len(users)
    n_cand = (cands >= 0).sum(axis=1)
    safe = np.where(cands >= 0, cands, 0)
    # click probability of every candidate at every position: [n_users, c, k] (position bias separable)
    p_click = world.click_prob(np.arange(n_users), safe, examined=True)[:, :, None] \
        * world.examine[None, None, :k]
    rng = np.random.default_rng(config.seed + 99)
    rank_of = np.zeros((n, k), np.int64)
    for row in range(n):
        u = users[row]
        pos = {int(i): r for r, i in enumerate(cands[u][: n_cand[u]])}
        rank_of[row] = [pos[int(i)] for i in slates[row]]
    p_logged = p_click[users[:, None], rank_of, np.arange(k)[None, :]]
    reward = (rng.random((n, k)) < p_logged).astype(np.float64)
    mats: dict[int, np.ndarray] = {}
    truth_u = np.zeros(n_users)
    for u in range(n_users):
        c = int(n_cand[u])
        if c not in mats:
            mats[c] = rank_marginals(tgt_spec, c, k)
        pm = mats[c]  # [k, c]
        truth_u[u] = float((pm * p_click[u, :c, : pm.shape[0]].T).sum())
    target_prob = np.stack([mats[int(n_cand[users[row]])][np.arange(k), rank_of[row]] for row in range(n)])
    # reward model features: position one-hot, log1p(rank), rank < k, log1p(item clicks), log1p(fatigue)
    item_clicks = np.bincount(train.item, minlength=config.n_items).astype(np.float64)

    def feats(uu: np.ndarray, ranks: np.ndarray, pos: np.ndarray) -> np.ndarray:
        items = safe[uu, ranks]
        x = np.zeros((len(uu), k + 4), np.float32)
        x[np.arange(len(uu)), pos] = 1.0
        x[:, k] = np.log1p(ranks)
        x[:, k + 1] = ranks < k
        x[:, k + 2] = np.log1p(item_clicks[items])
        x[:, k + 3] = np.log1p(world.fatigue[uu, items])
        return x

    lu = np.repeat(np.arange(n), k)  # unit of each logged row
    lp = np.tile(np.arange(k), n)
    ev_u, ev_r, ev_p, ev_w = [], [], [], []  # the target's (rank, position) support, per user
    for u in range(n_users):
        pm = mats[int(n_cand[u])]
        jj, rr = np.nonzero(pm)
        ev_u.append(np.full(len(jj), u))
        ev_r.append(rr)
        ev_p.append(jj)
        ev_w.append(pm[jj, rr])
    eu, er, ep, ew = (np.concatenate(a) for a in (ev_u, ev_r, ev_p, ev_w))
    q_log, q_eval = cross_fit_rewards(feats(users[lu], rank_of.ravel(), lp), reward.ravel(),
                                      units=users[lu], x_eval=feats(eu, er, ep), eval_units=eu,
                                      seed=config.seed)
    dm = direct_method(eu, ew, q_eval, units=np.arange(n_users))[users]  # per slate (unit = row)
    log = LoggedSlates(unit=lu, position=lp, reward=reward.ravel(), pscore=pscore.ravel(),
                       target=target_prob.ravel(), q_logged=q_log, dm=dm)
    truth = float(truth_u.mean())
    logging_value = float(p_logged.sum(axis=1).mean())  # expected, over logged slates
    out: dict[str, Any] = {"logging": log_spec, "target": tgt_spec, "warmup": warmup, "n_users": n_users,
                           "requests_per_user": requests,
                           "truth": truth, "logging_value": logging_value, "estimators": {}}
    for e in estimate(log, ("ips", "snips", "dr", "dm"), n_bootstrap=n_bootstrap, seed=config.seed):
        out["estimators"][e.estimator] = {"value": e.value, "ci": [e.ci_low, e.ci_high], "ess": e.ess,
                                          "relative_error": abs(e.value - truth) / truth,
                                          "truth_in_ci": bool(e.ci_low <= truth <= e.ci_high)}
    return out

"""The single definition of every ranking feature, from per-row aggregates.

Offline (``offline.py``, vectorised, as of each list's time t) and online (``online.py``, from
live incremental state) compute the same ``Aggregates`` -- counts, decayed sums, last times,
window counts, sums over the user's history, all over events strictly before t -- and both call
``finalize``, which turns them into the feature matrix. So a feature's formula exists once;
only the way its inputs are accumulated differs, and the skew test checks those agree.

Units: times are unix seconds; "days" features are (t - x) / 86400; decayed sums weigh an event
at time s by 0.5 ** ((t - s) / half_life_s). Missing values are NaN (LightGBM's missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from winnow.features.spec import DAY, FeatureSpec


@dataclass
class Aggregates:
    """Inputs of ``finalize``; every array is float64 [n_rows] unless noted.

    row_list: int64 [n] list (request) of each row; source features are normalised per list.
    src_score / src_rank: per source, raw score and 0-based rank; NaN where not proposed.
    cat_*: the user's engagement with the item's categories (max / sum over its categories);
    cat_last: latest time the user engaged any of them (NaN never). cr_*: the same for the
    creator. pop: window name -> event count of the item in [t - w, t); pop_all: before t;
    pop_span: the item's events in the user's active span [u_first, t); events_span: everyone's
    events in that span (NaN span when the user has no history). peer_pop [n, G]: the item's
    events before t by users of the user's group for each spec group (NaN unknown group);
    peer_events [n, G]: all events of that group before t; all_events: everyone's before t.
    u_*: the user's history before t: event count, count in the activity window, first/last
    time, sum and count of item ages at event time, sum of log1p(pop_all at t) of the items,
    per numeric item attribute sum and count. item_num [n, A], user_num [n, U], user_cat [n, C].
    """

    row_list: np.ndarray
    t: np.ndarray
    device: np.ndarray
    src_score: dict[str, np.ndarray]
    src_rank: dict[str, np.ndarray]
    cat_count_max: np.ndarray
    cat_count_sum: np.ndarray
    cat_decay_max: np.ndarray
    cat_decay_sum: np.ndarray
    cat_last: np.ndarray
    item_ncat: np.ndarray
    cr_count: np.ndarray
    cr_decay: np.ndarray
    cr_last: np.ndarray
    pop: dict[str, np.ndarray]
    pop_all: np.ndarray
    pop_span: np.ndarray
    events_span: np.ndarray
    item_created: np.ndarray
    peer_pop: np.ndarray
    peer_events: np.ndarray
    all_events: np.ndarray
    u_n: np.ndarray
    u_recent: np.ndarray
    u_first: np.ndarray
    u_last: np.ndarray
    u_age_sum: np.ndarray
    u_age_cnt: np.ndarray
    u_pop_sum: np.ndarray
    u_attr_sum: np.ndarray
    u_attr_cnt: np.ndarray
    item_num: np.ndarray
    user_num: np.ndarray
    user_cat: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def decay_weight(age_s: np.ndarray | float, half_life_s: float) -> np.ndarray | float:
    """Weight of an event ``age_s`` seconds before t."""
    return np.exp2(-np.asarray(age_s, dtype=np.float64) / half_life_s)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b > 0, else NaN (divides only where b > 0: no warning to silence)."""
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b > 0)


def _one_list(row_list: np.ndarray) -> bool:
    """True when every row belongs to the same list (a served request)."""
    return len(row_list) > 0 and row_list[0] == row_list[-1] and bool((row_list == row_list[0]).all())


def _per_list_max(values: np.ndarray, row_list: np.ndarray) -> np.ndarray:
    """Max of ``values`` (NaN ignored) over the rows of each row's list, broadcast back."""
    if len(values) == 0:
        return values
    _, inv = np.unique(row_list, return_inverse=True)
    m = np.full(inv.max() + 1, -np.inf)
    np.fmax.at(m, inv, np.where(np.isnan(values), -np.inf, values))
    out = m[inv]
    return np.where(np.isfinite(out), out, np.nan)


def _per_list_rank_z(values: np.ndarray, row_list: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per list: each row's 0-based rank of ``values`` (descending; ties share the order of the
    rows) among the list's rows with a value, divided by that count (0 = best, < 1), and its
    z-score against the list's mean and std. NaN rows stay NaN. Scale-free, so a source refitted
    on more data (other score distribution) gives comparable values."""
    n = len(values)
    rank, z = np.full(n, np.nan), np.full(n, np.nan)
    ok = ~np.isnan(values)
    if not ok.any():
        return rank, z
    idx = np.flatnonzero(ok)
    lst, v = row_list[idx], values[idx]
    order = np.lexsort((-v, lst))
    sl = lst[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sl) != 0])
    counts = np.diff(np.r_[starts, len(sl)])
    first = np.repeat(starts, counts)
    cnt = np.repeat(counts, counts).astype(np.float64)
    rank[idx[order]] = (np.arange(len(sl)) - first) / cnt
    vs = v[order]
    with np.errstate(divide="ignore", invalid="ignore"):  # an inf score: std NaN, z 0
        mean = np.add.reduceat(vs, starts) / counts
        var = np.maximum(np.add.reduceat(vs * vs, starts) / counts - mean * mean, 0.0)
        std = np.repeat(np.sqrt(var), counts)
        z[idx[order]] = np.where(std > 0, (vs - np.repeat(mean, counts)) / np.where(std > 0, std, 1.0), 0.0)
    return rank, z


def _one_list_source(score: np.ndarray) -> list[np.ndarray]:
    """[relative score, rank, z] of one list's source scores: what ``_per_list_max`` and
    ``_per_list_rank_z`` give for a single list (a served request), with the same arithmetic
    in the same order (bit-identical), without the group-by. The caller ignores divide/invalid."""
    n = len(score)
    top = np.fmax.reduce(score) if n else np.nan  # NaN ignored; NaN when every value is
    rel = score / abs(top) if np.isfinite(top) and top != 0 else np.full(n, np.nan)
    rank, z = np.full(n, np.nan), np.full(n, np.nan)
    idx = np.flatnonzero(~np.isnan(score))
    if len(idx):
        v = score[idx]
        order = np.argsort(-v, kind="stable")  # the permutation lexsort((-v, lst)) gives
        at = idx[order]
        m = float(len(v))
        rank[at] = np.arange(len(v)) / m
        vs = v[order]
        mean = np.add.reduceat(vs, [0]) / m
        std = np.sqrt(np.maximum(np.add.reduceat(vs * vs, [0]) / m - mean * mean, 0.0))
        z[at] = (vs - mean) / std if std[0] > 0 else 0.0  # an inf score: std NaN, z 0
    return [rel, rank, z]


def finalize(a: Aggregates, spec: FeatureSpec) -> np.ndarray:
    """float32 [n_rows, len(spec.names)] feature matrix, columns in ``spec.names`` order."""
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN / inf features are data here
        return _finalize(a, spec)


def _finalize(a: Aggregates, spec: FeatureSpec) -> np.ndarray:
    cols: list[np.ndarray] = []
    n = len(a.t)
    present = np.zeros(n)
    one = _one_list(a.row_list)  # serving: one request's list
    for s in spec.sources:
        score, rank = a.src_score[s], a.src_rank[s]
        if one:
            rel, rank_in, z = _one_list_source(score)
        else:
            top = _per_list_max(score, a.row_list)
            rel = np.where(np.abs(top) > 0, score / np.abs(top), np.nan)
            rank_in, z = _per_list_rank_z(score, a.row_list)
        cols += [score, rank, rel, rank_in, z]
        present += ~np.isnan(rank)
    cols.append(present)
    t = a.t
    cols += [a.cat_count_max, a.cat_count_sum, _div(a.cat_count_max, a.u_n), a.cat_decay_max,
             a.cat_decay_sum, (t - a.cat_last) / DAY, a.item_ncat]
    cols += [a.cr_count, _div(a.cr_count, a.u_n), a.cr_decay, (t - a.cr_last) / DAY]
    cols += [a.pop[w] for w in spec.windows] + [a.pop_all]
    longest = max(spec.windows, key=lambda w: spec.windows[w]) if spec.windows else None
    cols.append(_div(a.pop[longest], a.pop_all) if longest else np.full(n, np.nan))
    cols += [a.pop_span, _div(a.pop_span, a.events_span) * 1000.0]
    item_age = (t - a.item_created) / DAY
    pref_age = _div(a.u_age_sum, a.u_age_cnt) / DAY
    cols += [item_age, pref_age, item_age - pref_age]
    pop_pref = _div(a.u_pop_sum, a.u_n)
    cols += [pop_pref, np.log1p(a.pop_all) - pop_pref]
    for j in range(len(spec.item_numeric)):
        mean = _div(a.u_attr_sum[:, j], a.u_attr_cnt[:, j])
        cols += [a.item_num[:, j], mean, a.item_num[:, j] - mean]
    base = _div(a.pop_all, a.all_events)
    for j in range(len(spec.groups)):
        share = _div(a.peer_pop[:, j], a.peer_events[:, j])
        cols += [a.peer_pop[:, j], share * 1000.0, _div(share, base)]
    cols += [a.u_n, a.u_recent, (a.u_last - a.u_first) / DAY, (t - a.u_last) / DAY]
    cols += [a.user_num[:, j] for j in range(a.user_num.shape[1])]
    cols += [a.user_cat[:, j] for j in range(a.user_cat.shape[1])]
    cols += [np.floor(t / 3600.0) % 24, (np.floor(t / DAY) + 3) % 7, a.device]  # 1970-01-01 was a Thursday -> Monday = 0
    if len(cols) != len(spec.names):
        raise AssertionError(f"feature matrix has {len(cols)} columns, spec names {len(spec.names)}")
    out = np.empty((n, len(cols)), np.float32)  # each float64 column rounds once, as astype did
    for j, c in enumerate(cols):
        out[:, j] = c
    return out

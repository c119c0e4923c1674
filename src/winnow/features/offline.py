"""Offline (training-time) features, point-in-time correct and vectorised.

A training example is a row (list, item) of a candidate list; each list belongs to one user and
has an as-of time t. Every aggregate for a row reads only events with timestamp < t (strictly
before: an event at t itself is the future), so labels at or after t can never leak into the
features. The formulas live in ``definitions.finalize``; ``online.py`` computes the same inputs
from live state.

Cost: O(E log E + J + R * c) for E events, J = sum over lists of the user's events before t,
R rows and c categories per item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from winnow.data.interactions import Interactions
from winnow.features.catalog import FeatureCatalog
from winnow.features.definitions import Aggregates, decay_weight, finalize
from winnow.features.spec import FeatureSpec


@dataclass(frozen=True)
class Lists:
    """Candidate lists to featurise.

    user: int64 [L] user index of each list; t: int64 [L] as-of time (unix seconds);
    device: float64 [L] device code (NaN unknown) or None;
    row_list: int64 [n] list of each row; row_item: int64 [n] item index of each row;
    src_score / src_rank: source name -> float64 [n] (NaN where the source did not propose it).
    """

    user: np.ndarray
    t: np.ndarray
    row_list: np.ndarray
    row_item: np.ndarray
    src_score: dict[str, np.ndarray]
    src_rank: dict[str, np.ndarray]
    device: np.ndarray | None = None


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l)."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - offsets + np.repeat(starts, lengths)


class _Sorted:
    """Events sorted by (key, time) with a packed int64 key for as-of range counts."""

    def __init__(self, key: np.ndarray, ts: np.ndarray, tmin: int, span: int) -> None:
        self.tmin, self.span = tmin, span
        packed = key.astype(np.int64) * span + (ts - tmin)
        self.order = np.argsort(packed, kind="stable")
        self.packed = packed[self.order]

    def position(self, key: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index in sorted order of the first event of ``key`` at time >= t."""
        off = np.clip(np.asarray(t, np.int64) - self.tmin, 0, self.span)
        return np.searchsorted(self.packed, key.astype(np.int64) * self.span + off, side="left")

    def count(self, key: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Events of ``key`` with lo <= time < hi."""
        return (self.position(key, hi) - self.position(key, lo)).astype(np.float64)


def _group_aggregates(group: np.ndarray, ts: np.ndarray, t_of_row: np.ndarray,
                      half_life_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct int64 ``group`` key: (keys sorted, count, decayed sum, last time)."""
    if len(group) == 0:
        e = np.empty(0)
        return np.empty(0, np.int64), e, e, e
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    count = np.diff(np.r_[starts, len(g)]).astype(np.float64)
    w = decay_weight(t_of_row[order] - ts[order], half_life_s)
    decay = np.add.reduceat(w, starts)
    last = np.maximum.reduceat(ts[order].astype(np.float64), starts)
    return g[starts], count, decay, last


def _lookup(keys: np.ndarray, query: np.ndarray, *values: np.ndarray,
            fill: tuple[float, ...]) -> list[np.ndarray]:
    pos = np.searchsorted(keys, query)
    pos_c = np.minimum(pos, max(len(keys) - 1, 0))
    found = (pos < len(keys)) & (keys[pos_c] == query) if len(keys) else np.zeros(len(query), bool)
    return [np.where(found, v[pos_c] if len(v) else f, f) for v, f in zip(values, fill, strict=True)]


# What computes the offline features: ``offline_features`` below, or an engine's distributed
# equivalent (winnow.engine: same inputs, same float32 [n_rows, n_features] result).
OfflineFeatures = Callable[[Interactions, FeatureCatalog, FeatureSpec, "Lists"], np.ndarray]


def offline_features(events: Interactions, catalog: FeatureCatalog, spec: FeatureSpec,
                     lists: Lists) -> np.ndarray:
    """float32 [n_rows, len(spec.names)]: row r's features as of ``lists.t[row_list[r]]``."""
    ev_u = events.user.astype(np.int64)
    ev_i = events.item.astype(np.int64)
    ev_t = events.timestamp.astype(np.int64)
    l_user = np.asarray(lists.user, np.int64)
    l_t = np.asarray(lists.t, np.int64)
    r_list = np.asarray(lists.row_list, np.int64)
    r_item = np.asarray(lists.row_item, np.int64)
    n_rows, n_lists = len(r_list), len(l_user)
    tmin = int(min(ev_t.min() if len(ev_t) else 0, l_t.min() if n_lists else 0)) - 1
    tmax = int(max(ev_t.max() if len(ev_t) else 0, l_t.max() if n_lists else 0)) + 1
    span = tmax - tmin + 1

    # --- the user's events before t, per list (the join) ---------------------------------------
    by_user = _Sorted(ev_u, ev_t, tmin, span)
    start = by_user.position(l_user, np.full(n_lists, tmin))
    end = by_user.position(l_user, l_t)
    length = end - start
    j_list = np.repeat(np.arange(n_lists), length)
    j_ev = by_user.order[_ranges(start, length)]
    j_item, j_ts = ev_i[j_ev], ev_t[j_ev].astype(np.float64)
    j_t = l_t[j_list].astype(np.float64)

    # --- item popularity as of t --------------------------------------------------------------
    by_item = _Sorted(ev_i, ev_t, tmin, span)
    row_t = l_t[r_list]
    never = np.full(n_rows, tmin)
    pop = {w: by_item.count(r_item, row_t - sec, row_t) for w, sec in spec.windows.items()}
    pop_all = by_item.count(r_item, never, row_t)

    # --- user-level history aggregates per list -----------------------------------------------
    def per_list(values: np.ndarray) -> np.ndarray:
        return np.bincount(j_list, weights=values, minlength=n_lists)

    u_n = length.astype(np.float64)
    u_recent = per_list((j_ts >= j_t - spec.activity_window_s).astype(np.float64))
    u_first = np.where(length > 0, by_user.packed[np.minimum(start, len(ev_u) - 1)] % span + tmin
                       if len(ev_u) else np.nan, np.nan).astype(np.float64)
    u_last = np.where(length > 0, by_user.packed[np.maximum(end - 1, 0)] % span + tmin
                      if len(ev_u) else np.nan, np.nan).astype(np.float64)
    has_hist = length[r_list] > 0
    span_lo = np.where(has_hist, u_first[r_list], row_t).astype(np.int64)
    pop_span = np.where(has_hist, by_item.count(r_item, span_lo, row_t), np.nan)
    all_ts = np.sort(ev_t)
    events_span = np.where(has_hist, (np.searchsorted(all_ts, row_t) - np.searchsorted(all_ts, span_lo))
                           .astype(np.float64), np.nan)
    n_groups = len(spec.groups)
    peer_pop = np.full((n_rows, n_groups), np.nan)
    peer_events = np.full((n_rows, n_groups), np.nan)
    row_user = l_user[r_list]
    for g in range(n_groups):
        ev_g = catalog.user_groups[ev_u, g]
        n_codes = int(catalog.user_groups[:, g].max()) + 2
        known = catalog.user_groups[row_user, g] >= 0
        code = catalog.user_groups[row_user, g] + 1  # 0 = unknown group
        by_peer = _Sorted(ev_i * n_codes + ev_g + 1, ev_t, tmin, span)
        by_group = _Sorted(ev_g + 1, ev_t, tmin, span)
        peer_pop[:, g] = np.where(known, by_peer.count(r_item * n_codes + code, never, row_t), np.nan)
        peer_events[:, g] = np.where(known, by_group.count(code, never, row_t), np.nan)
    all_events = (np.searchsorted(all_ts, row_t) - np.searchsorted(all_ts, never)).astype(np.float64)
    created = catalog.item_created[j_item]
    known_age = ~np.isnan(created)
    u_age_sum = per_list(np.where(known_age, j_ts - created, 0.0))
    u_age_cnt = per_list(known_age.astype(np.float64))
    j_pop = by_item.count(j_item, np.full(len(j_item), tmin), l_t[j_list])
    u_pop_sum = per_list(np.log1p(j_pop))
    n_attr = len(spec.item_numeric)
    u_attr_sum = np.zeros((n_lists, n_attr))
    u_attr_cnt = np.zeros((n_lists, n_attr))
    for a in range(n_attr):
        v = catalog.item_numeric[j_item, a]
        ok = ~np.isnan(v)
        u_attr_sum[:, a] = per_list(np.where(ok, v, 0.0))
        u_attr_cnt[:, a] = per_list(ok.astype(np.float64))

    # --- user x category ----------------------------------------------------------------------
    n_cat = catalog.n_categories
    ic = catalog.item_cat
    n_ev_cats = np.diff(ic.indptr)[j_item]
    jc_row = np.repeat(np.arange(len(j_item)), n_ev_cats)
    jc_cat = ic.indices[_ranges(ic.indptr[j_item], n_ev_cats)].astype(np.int64)
    keys, cnt, dec, last = _group_aggregates(j_list[jc_row] * n_cat + jc_cat, j_ts[jc_row],
                                             j_t[jc_row], spec.half_life_s)
    n_row_cats = np.diff(ic.indptr)[r_item]
    rc_row = np.repeat(np.arange(n_rows), n_row_cats)
    rc_cat = ic.indices[_ranges(ic.indptr[r_item], n_row_cats)].astype(np.int64)
    c_cnt, c_dec, c_last = _lookup(keys, r_list[rc_row] * n_cat + rc_cat, cnt, dec, last,
                                   fill=(0.0, 0.0, np.nan))

    def row_max(v: np.ndarray, empty: float) -> np.ndarray:
        out = np.full(n_rows, -np.inf)
        np.fmax.at(out, rc_row, np.where(np.isnan(v), -np.inf, v))
        return np.where(np.isfinite(out), out, empty)

    cat_count_max = row_max(c_cnt, 0.0)
    cat_decay_max = row_max(c_dec, 0.0)
    cat_last = row_max(c_last, np.nan)
    cat_count_sum = np.bincount(rc_row, weights=c_cnt, minlength=n_rows)
    cat_decay_sum = np.bincount(rc_row, weights=c_dec, minlength=n_rows)

    # --- user x creator -----------------------------------------------------------------------
    n_cr = max(catalog.n_creators, 1)
    j_cr = catalog.item_creator[j_item]
    has = j_cr >= 0
    keys, cnt, dec, last = _group_aggregates(j_list[has] * n_cr + j_cr[has], j_ts[has], j_t[has],
                                             spec.half_life_s)
    r_cr = catalog.item_creator[r_item]
    cr_count, cr_decay, cr_last = _lookup(keys, r_list * n_cr + np.maximum(r_cr, 0), cnt, dec, last,
                                          fill=(0.0, 0.0, np.nan))
    no_cr = r_cr < 0
    cr_count[no_cr], cr_decay[no_cr], cr_last[no_cr] = 0.0, 0.0, np.nan

    device = (np.full(n_rows, np.nan) if lists.device is None
              else np.asarray(lists.device, np.float64)[r_list])
    agg = Aggregates(
        row_list=r_list, t=row_t.astype(np.float64), device=device,
        src_score={s: np.asarray(lists.src_score[s], np.float64) for s in spec.sources},
        src_rank={s: np.asarray(lists.src_rank[s], np.float64) for s in spec.sources},
        cat_count_max=cat_count_max, cat_count_sum=cat_count_sum, cat_decay_max=cat_decay_max,
        cat_decay_sum=cat_decay_sum, cat_last=cat_last, item_ncat=n_row_cats.astype(np.float64),
        cr_count=cr_count, cr_decay=cr_decay, cr_last=cr_last, pop=pop, pop_all=pop_all,
        pop_span=pop_span, events_span=events_span, peer_pop=peer_pop, peer_events=peer_events,
        all_events=all_events, item_created=catalog.item_created[r_item],
        u_n=u_n[r_list], u_recent=u_recent[r_list], u_first=u_first[r_list], u_last=u_last[r_list],
        u_age_sum=u_age_sum[r_list], u_age_cnt=u_age_cnt[r_list], u_pop_sum=u_pop_sum[r_list],
        u_attr_sum=u_attr_sum[r_list], u_attr_cnt=u_attr_cnt[r_list],
        item_num=catalog.item_numeric[r_item], user_num=catalog.user_numeric[l_user[r_list]],
        user_cat=catalog.user_categorical[l_user[r_list]])
    return finalize(agg, spec)

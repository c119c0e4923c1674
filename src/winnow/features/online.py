"""Online (serving-time) features from live incremental state.

``OnlineFeatureState`` ingests events one at a time (``add_event``, O(categories of the item))
and answers ``features(user, items, t)`` for one request: the same ``Aggregates`` as
``offline.offline_features`` computes for a list at time t, then the same ``finalize``. The
state assumes it holds only events before t (the service's "now"); window counts and the user's
recent activity are taken with t by binary search, decayed sums are kept at a reference time
and decayed to t when read. Indices are dense internal ids; items beyond the catalog arrays
(added after training) have no categories, creator, age or attributes.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from winnow.features.catalog import FeatureCatalog
from winnow.features.definitions import Aggregates, finalize
from winnow.features.spec import FeatureSpec


@dataclass(slots=True)
class _Engagement:
    """count, decayed sum at ``ref`` time, reference time, last time."""

    count: int = 0
    decay: float = 0.0
    ref: float = -math.inf
    last: float = -math.inf

    def add(self, ts: float, half_life_s: float) -> None:
        self.count += 1
        if self.count == 1:
            self.decay, self.ref = 1.0, ts
        elif ts >= self.ref:
            self.decay = self.decay * math.exp2(-(ts - self.ref) / half_life_s) + 1.0
            self.ref = ts
        else:
            self.decay += math.exp2(-(self.ref - ts) / half_life_s)
        self.last = max(self.last, ts)

    def decay_at(self, t: float, half_life_s: float) -> float:
        return self.decay * math.exp2(-(t - self.ref) / half_life_s) if self.count else 0.0


@dataclass(slots=True)
class _User:
    ts: list[float] = field(default_factory=list)      # sorted event times
    items: list[int] = field(default_factory=list)     # every event's item (any order)
    cats: dict[int, _Engagement] = field(default_factory=dict)
    creators: dict[int, _Engagement] = field(default_factory=dict)
    age_sum: float = 0.0
    age_cnt: int = 0
    attr_sum: np.ndarray | None = None
    attr_cnt: np.ndarray | None = None


class OnlineFeatureState:
    """Live per-user and per-item state for ranking features (see module docstring)."""

    def __init__(self, catalog: FeatureCatalog, spec: FeatureSpec) -> None:
        self.catalog = catalog
        self.spec = spec
        self._users: dict[int, _User] = {}
        self._item_ts: dict[int, list[float]] = {}
        self._all_ts: list[float] = []  # every event time, sorted (activity-span denominators)
        # (group attr, code) -> item -> sorted times (nested: one dict get per candidate at serving)
        self._peer_ts: dict[tuple[int, int], dict[int, list[float]]] = {}
        self._group_ts: dict[tuple[int, int], list[float]] = {}      # (group attr, code)
        self._n_items = catalog.item_cat.shape[0]

    def _cats(self, item: int) -> np.ndarray:
        if item >= self._n_items:
            return np.empty(0, np.int32)
        ic = self.catalog.item_cat
        return ic.indices[ic.indptr[item]:ic.indptr[item + 1]]

    def _creator(self, item: int) -> int:
        return int(self.catalog.item_creator[item]) if item < self._n_items else -1

    def _created(self, item: int) -> float:
        return float(self.catalog.item_created[item]) if item < self._n_items else math.nan

    def _item_categories(self, inside: np.ndarray, safe: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (position, category) pair of a list of items: (positions int [m], categories
        int64 [m], categories per position int [n]); ``inside`` marks positions whose item is in
        the catalog, ``safe`` is the item index there (any valid index elsewhere)."""
        ic = self.catalog.item_cat
        n = len(inside)
        lens = np.where(inside, np.diff(ic.indptr)[safe], 0) if self._n_items else np.zeros(n, np.int64)
        rows = np.repeat(np.arange(n), lens)
        if not len(rows):
            return rows, np.empty(0, np.int64), lens
        first = np.repeat(ic.indptr[safe], lens)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
        return rows, ic.indices[first + offs].astype(np.int64), lens

    def add_event(self, user: int, item: int, ts: float) -> None:
        """Fold one positive event into the state (events may arrive slightly out of order)."""
        ts = float(ts)
        hl = self.spec.half_life_s
        u = self._users.get(user)
        if u is None:
            u = self._users[user] = _User()
            n_attr = len(self.spec.item_numeric)
            u.attr_sum, u.attr_cnt = np.zeros(n_attr), np.zeros(n_attr)
        bisect.insort(u.ts, ts)
        u.items.append(item)
        for c in self._cats(item):
            u.cats.setdefault(int(c), _Engagement()).add(ts, hl)
        cr = self._creator(item)
        if cr >= 0:
            u.creators.setdefault(cr, _Engagement()).add(ts, hl)
        created = self._created(item)
        if not math.isnan(created):
            u.age_sum += ts - created
            u.age_cnt += 1
        if item < self._n_items and len(self.spec.item_numeric):
            v = self.catalog.item_numeric[item]
            ok = ~np.isnan(v)
            u.attr_sum[ok] += v[ok]  # type: ignore[index]
            u.attr_cnt[ok] += 1  # type: ignore[index]
        bisect.insort(self._item_ts.setdefault(item, []), ts)
        bisect.insort(self._all_ts, ts)
        if 0 <= user < self.catalog.user_groups.shape[0]:
            for g, code in enumerate(self.catalog.user_groups[user].tolist()):
                if code >= 0:
                    bisect.insort(self._peer_ts.setdefault((g, code), {}).setdefault(item, []), ts)
                    bisect.insort(self._group_ts.setdefault((g, code), []), ts)

    def add_events(self, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> None:
        """Fold many positive events in at once: the same state as ``add_event`` per event (in
        any order; decayed sums equal up to float rounding), computed with numpy group-bys so a
        replay of the whole event log at bundle load does not hold the GIL in a per-event
        Python loop. ``users``/``items``: int [n] dense indices; ``ts``: [n] seconds."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        ts = np.asarray(ts, np.float64)
        if not len(ts):
            return
        hl = self.spec.half_life_s
        # one Python float (and int) per event, shared by every list that holds it, as add_event does
        ts_obj, item_obj = ts.tolist(), items.tolist()
        self._all_ts = _merged(self._all_ts, _take(ts_obj, np.argsort(ts, kind="stable")))
        for item, t in _groups(items, ts, ts_obj):
            self._item_ts[item] = _merged(self._item_ts.get(item, []), t)
        n_attr = len(self.spec.item_numeric)
        inside = items < self._n_items
        safe = np.where(inside, items, 0)
        created = np.where(inside, self.catalog.item_created[safe] if self._n_items else np.nan, np.nan)
        has_age = ~np.isnan(created)
        num = (np.where(inside[:, None], self.catalog.item_numeric[safe], np.nan) if self._n_items
               else np.full((len(ts), n_attr), np.nan))
        age = np.where(has_age, ts - np.nan_to_num(created), 0.0)
        ok = ~np.isnan(num)
        vals = np.where(ok, num, 0.0)
        uniq, inv = np.unique(users, return_inverse=True)
        age_sum = np.bincount(inv, weights=age, minlength=len(uniq))
        age_cnt = np.bincount(inv, weights=has_age, minlength=len(uniq))
        attr_sum = np.stack([np.bincount(inv, weights=vals[:, j], minlength=len(uniq)) for j in range(n_attr)], 1) \
            if n_attr else np.zeros((len(uniq), 0))
        attr_cnt = np.stack([np.bincount(inv, weights=ok[:, j], minlength=len(uniq)) for j in range(n_attr)], 1) \
            if n_attr else np.zeros((len(uniq), 0))
        ts_by_user = _groups(users, ts, ts_obj)
        items_by_user = _groups(users, items, item_obj)
        for g, ((user, t), (_, its)) in enumerate(zip(ts_by_user, items_by_user, strict=True)):
            u = self._users.get(user)
            if u is None:
                u = self._users[user] = _User(attr_sum=np.zeros(n_attr), attr_cnt=np.zeros(n_attr))
            u.ts = _merged(u.ts, t)
            u.items.extend(its)
            u.age_sum += float(age_sum[g])
            u.age_cnt += int(age_cnt[g])
            if n_attr:
                u.attr_sum += attr_sum[g]  # type: ignore[operator]
                u.attr_cnt += attr_cnt[g]  # type: ignore[operator]
        # (user, category) and (user, creator) engagement
        ev, cats, _ = self._item_categories(inside, safe)
        self._engage(users[ev], cats, ts[ev], hl, "cats")
        creator = np.where(inside, self.catalog.item_creator[safe] if self._n_items else -1, -1)
        has = creator >= 0
        self._engage(users[has], creator[has], ts[has], hl, "creators")
        # peer groups
        groups = self.catalog.user_groups
        in_users = (users >= 0) & (users < groups.shape[0])
        span = int(items.max()) + 1
        for g in range(groups.shape[1]):
            code = np.full(len(ts), -1, np.int64)
            code[in_users] = groups[users[in_users], g]
            ok = code >= 0
            sub = _take(ts_obj, np.flatnonzero(ok))
            for c, t in _groups(code[ok], ts[ok], sub):
                self._group_ts[(g, c)] = _merged(self._group_ts.get((g, c), []), t)
            key = code[ok] * span + items[ok]
            for k, t in _groups(key, ts[ok], sub):
                by_item = self._peer_ts.setdefault((g, k // span), {})
                by_item[k % span] = _merged(by_item.get(k % span, []), t)

    def _engage(self, users: np.ndarray, keys: np.ndarray, ts: np.ndarray, hl: float, attr: str) -> None:
        """Group (user, key) events into ``_Engagement`` records of ``_users[user].<attr>``."""
        if not len(ts):
            return
        order = np.lexsort((ts, keys, users))
        u, k, t = users[order], keys[order], ts[order]
        starts = np.flatnonzero(np.r_[True, (np.diff(u) != 0) | (np.diff(k) != 0)])
        ref = np.maximum.reduceat(t, starts)  # the group's newest event (t sorted within a group)
        gid = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(t)]))
        decay = np.bincount(gid, weights=np.exp2(-(ref[gid] - t) / hl))
        count = np.diff(np.r_[starts, len(t)])
        heads = u[starts]
        bounds = np.flatnonzero(np.r_[True, np.diff(heads) != 0]).tolist()
        cols = k[starts].tolist(), count.tolist(), decay.tolist(), ref.tolist()
        for a, b in zip(bounds, [*bounds[1:], len(starts)], strict=True):
            table = getattr(self._users[int(heads[a])], attr)
            keys, ns, ds, rs = (c[a:b] for c in cols)
            if not table:  # the common case (replay into an empty state): no merging
                table.update(zip(keys, map(_Engagement, ns, ds, rs, rs)))
                continue
            for key, n, d, r in zip(keys, ns, ds, rs, strict=True):
                e = table.get(key)
                if e is None:
                    table[key] = _Engagement(n, d, r, r)
                else:  # merge with earlier state: both sums decayed to the newer reference time
                    new_ref = max(e.ref, r)
                    e.decay = e.decay * math.exp2(-(new_ref - e.ref) / hl) + d * math.exp2(-(new_ref - r) / hl)
                    e.count, e.ref, e.last = e.count + n, new_ref, max(e.last, r)

    def has_history(self, user: int) -> bool:
        """True when at least one event of ``user`` has been added."""
        u = self._users.get(user)
        return u is not None and len(u.ts) > 0

    def _pop_before(self, item: int, t: float) -> int:
        return bisect.bisect_left(self._item_ts.get(item, []), t)

    def features(self, user: int, items: np.ndarray, t: float, *,
                 src_score: dict[str, np.ndarray], src_rank: dict[str, np.ndarray],
                 device: str | None = None) -> np.ndarray:
        """float32 [len(items), len(spec.names)] for one request of ``user`` at time ``t``.

        src_score / src_rank: per spec source, float [len(items)] (NaN where not proposed).
        """
        spec, hl = self.spec, self.spec.half_life_s
        items = np.asarray(items, np.int64)
        n = len(items)
        u = self._users.get(user) or _User(attr_sum=np.zeros(len(spec.item_numeric)),
                                            attr_cnt=np.zeros(len(spec.item_numeric)))
        first = u.ts[0] if u.ts else math.nan
        # per-candidate catalog lookups, vectorised; the per-user state lookups below are
        # Python loops over plain lists (a numpy scalar write per feature per item cost more
        # than the lookups themselves)
        inside = (items >= 0) & (items < self._n_items)
        safe = np.where(inside, items, 0)
        if self._n_items:
            created = np.where(inside, self.catalog.item_created[safe], np.nan).astype(np.float64)
            creators = np.where(inside, self.catalog.item_creator[safe], -1).tolist()
        else:
            created, creators = np.full(n, np.nan), [-1] * n
        rows, cats, lens = self._item_categories(inside, safe)
        ncat = lens.astype(np.float64)
        row_of, cat_of = rows.tolist(), cats.tolist()
        cmax_l, csum_l, dmax_l, dsum_l = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        clast_l = [-math.inf] * n
        cat_get = u.cats.get
        for r, c in zip(row_of, cat_of, strict=True):
            e = cat_get(c)
            if e is None:
                continue
            d = e.decay_at(t, hl)
            cmax_l[r] = max(cmax_l[r], e.count)
            csum_l[r] += e.count
            dmax_l[r] = max(dmax_l[r], d)
            dsum_l[r] += d
            clast_l[r] = max(clast_l[r], e.last)
        cmax, csum, dmax, dsum = (np.array(x, np.float64) for x in (cmax_l, csum_l, dmax_l, dsum_l))
        clast = np.array(clast_l, np.float64)
        clast[clast == -math.inf] = np.nan
        crc_l, crd_l, crl_l = [0.0] * n, [0.0] * n, [math.nan] * n
        cre_get = u.creators.get
        for r, cr in enumerate(creators):
            e = cre_get(cr) if cr >= 0 else None
            if e is not None:
                crc_l[r], crd_l[r], crl_l[r] = e.count, e.decay_at(t, hl), e.last
        crc, crd, crl = (np.array(x, np.float64) for x in (crc_l, crd_l, crl_l))
        windows = list(spec.windows.items())
        pop_l: list[list[int]] = [[] for _ in windows]
        pop_all_l: list[int] = []
        span_l: list[float] = []
        ts_get, left, has_hist = self._item_ts.get, bisect.bisect_left, bool(u.ts)
        for item in items.tolist():
            ts = ts_get(item, ())
            hi = left(ts, t)
            for j, (_, sec) in enumerate(windows):
                pop_l[j].append(hi - left(ts, t - sec))
            pop_all_l.append(hi)
            span_l.append(hi - left(ts, first) if has_hist else math.nan)
        pop = {w: np.array(pop_l[j], np.float64) for j, (w, _) in enumerate(windows)}
        pop_all, pop_span = np.array(pop_all_l, np.float64), np.array(span_l, np.float64)
        n_hist = len(u.ts)
        recent = n_hist - bisect.bisect_left(u.ts, t - spec.activity_window_s)
        pop_sum = sum(math.log1p(self._pop_before(i, t)) for i in u.items)
        ones = np.ones(n)
        events_span = (bisect.bisect_left(self._all_ts, t) - bisect.bisect_left(self._all_ts, first)
                       if n_hist else math.nan)
        last = u.ts[-1] if n_hist else math.nan
        n_attr = len(spec.item_numeric)
        item_num = np.full((n, n_attr), np.nan)
        item_num[inside] = self.catalog.item_numeric[items[inside]]
        in_users = 0 <= user < self.catalog.user_numeric.shape[0]
        user_num = (self.catalog.user_numeric[user] if in_users
                    else np.full(len(spec.user_numeric), np.nan))
        user_cat = (self.catalog.user_categorical[user] if in_users
                    else np.full(len(spec.user_categorical), np.nan))
        n_groups = len(spec.groups)
        peer_pop = np.full((n, n_groups), np.nan)
        peer_events = np.full((n, n_groups), np.nan)
        codes = (self.catalog.user_groups[user].tolist() if in_users else [-1] * n_groups)
        for g, code in enumerate(codes):
            if code < 0:
                continue
            peer_events[:, g] = bisect.bisect_left(self._group_ts.get((g, code), []), t)
            peer_get = self._peer_ts.get((g, code), {}).get
            left = bisect.bisect_left
            peer_pop[:, g] = [left(peer_get(item, ()), t) for item in items.tolist()]
        all_events = bisect.bisect_left(self._all_ts, t)
        agg = Aggregates(
            row_list=np.zeros(n, np.int64), t=np.full(n, float(t)),
            device=np.full(n, spec.device_code(device)),
            src_score={s: np.asarray(src_score[s], np.float64) for s in spec.sources},
            src_rank={s: np.asarray(src_rank[s], np.float64) for s in spec.sources},
            cat_count_max=cmax, cat_count_sum=csum, cat_decay_max=dmax, cat_decay_sum=dsum,
            cat_last=clast, item_ncat=ncat, cr_count=crc, cr_decay=crd, cr_last=crl,
            pop=pop, pop_all=pop_all, pop_span=pop_span,
            events_span=np.full(n, float(events_span)), peer_pop=peer_pop, peer_events=peer_events,
            all_events=np.full(n, float(all_events)), item_created=created,
            u_n=ones * n_hist, u_recent=ones * recent, u_first=ones * first, u_last=ones * last,
            u_age_sum=ones * u.age_sum, u_age_cnt=ones * u.age_cnt, u_pop_sum=ones * pop_sum,
            u_attr_sum=np.tile(u.attr_sum, (n, 1)), u_attr_cnt=np.tile(u.attr_cnt, (n, 1)),
            item_num=item_num, user_num=np.tile(user_num, (n, 1)),
            user_cat=np.tile(user_cat, (n, 1)))
        return finalize(agg, spec)


def _take(objs: list, idx: np.ndarray) -> list:
    """[objs[i] for i in idx], at C speed (the same objects, not copies)."""
    return list(map(objs.__getitem__, idx.tolist()))


def _groups(keys: np.ndarray, values: np.ndarray, objs: list) -> list[tuple[int, list]]:
    """(key, that key's ``objs`` ordered by ``values``) for each distinct key, keys ascending;
    ``keys``, ``values`` and ``objs`` are aligned (``objs[j]`` is row j's Python object)."""
    if not len(values):
        return []
    order = np.lexsort((values, keys))
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, np.diff(k) != 0]).tolist()
    flat = _take(objs, order)
    ends = [*starts[1:], len(flat)]
    return [(key, flat[a:b]) for key, a, b in zip(k[starts].tolist(), starts, ends, strict=True)]


def _merged(old: list, new: list) -> list:
    """Sorted merge of two sorted lists (timsort merges the two runs in linear time)."""
    if not old:
        return new
    return sorted(old + new)

"""Online (serving-time) features from live incremental state.

``OnlineFeatureState`` ingests events (``add_event`` one at a time, ``add_events`` in bulk:
the same state either way) and answers ``features(user, items, t)`` for one request: the same
``Aggregates`` as ``offline.offline_features`` computes for a list at time t, then the same
``finalize``. The state assumes it holds only events before t (the service's "now"); window
counts and the user's recent activity are taken with t, decayed sums are kept at a reference
time and decayed to t when read. Indices are dense internal ids; items beyond the catalog
arrays (added after training) have no categories, creator, age or attributes.

Event times are whole seconds (the store's unit; a fraction is dropped on insert). Every count
of events before a time is exact: an item's popularity and peer-group counts come from
``ItemEventCounts`` (per-item totals kept current by ingest, gathered; a ``SortedCounts`` search
only where a bound cuts through an item's events), the rest are ``SortedCounts`` lookups of
packed (group, time) keys. So ``features`` has no per-candidate Python: for a request of n candidates it runs a fixed number
of numpy calls of size ~n (plus one of the user's history length for the popularity
preference), whatever the event log's size.
"""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np

from winnow.features.catalog import FeatureCatalog
from winnow.features.counts import GROUP_LIMIT, TIME_BITS, TIME_OFFSET, SortedCounts, pack
from winnow.features.definitions import Aggregates, finalize
from winnow.features.item_counts import ItemEventCounts
from winnow.features.remap import changed_items, peers_moved
from winnow.features.spec import FeatureSpec
from winnow.features.user_state import Engagement, UserState, merged_history

_LOW = (1 << TIME_BITS) - 1  # the time part of a packed key (a user index in ``_item_users``)
_CODE_SPAN = 1 << 20  # peer-group codes per group attribute in the combined (group, code) key


class OnlineFeatureState:
    """Live per-user and per-item state for ranking features (see module docstring)."""

    def __init__(self, catalog: FeatureCatalog, spec: FeatureSpec) -> None:
        self.catalog = catalog
        self.spec = spec
        self._users: dict[int, UserState] = {}
        self._owned: set[int] | None = None  # after a fork: users copied since (None: all owned)
        self._all_events = SortedCounts()    # (0, time): everyone's events (activity-span denominators)
        # (peer group g, its code) -> time, all groups in one
        self._group_events = SortedCounts()
        self._item_users = SortedCounts()    # (item, user) per event: the users of an item (remaps)
        self._todo: tuple[FeatureCatalog, bool] | None = None  # a fork's corrections not yet made
        widths = self._layout(catalog)
        # (item, time) with per-item totals: popularity windows, history popularity, peer counts
        self._items = ItemEventCounts(self._n_items, int(sum(widths)))

    def _layout(self, catalog: FeatureCatalog) -> list[int]:
        """Set the catalog-derived sizes (items, peer groups, each group's column offset in the
        item counts: peer code (g, code) -> offset of g + code); returns each group's width."""
        groups = catalog.user_groups
        self._n_groups = groups.shape[1] if groups.ndim == 2 else 0
        widths = [int(groups[:, g].max()) + 1 if len(groups) else 0 for g in range(self._n_groups)]
        self._code_offset = np.cumsum([0, *widths])[:-1].astype(np.int64)
        self._n_items = catalog.item_cat.shape[0]
        return widths

    def fork(self, catalog: FeatureCatalog, spec: FeatureSpec, *, correct: bool = True) -> OnlineFeatureState:
        """This state under a new bundle's catalog and spec, without replaying the event log:
        valid only when every index this state has seen means the same user or item in the new
        bundle (new indices after them) and the spec's half-life and item attributes are equal
        (``features.remap.remap_blocker``). Event multisets and user records are shared, copied
        on first write by either side (so the two states evolve independently from here).
        Costs O(users + items x peer codes), plus, when the new catalog changes known rows
        (``features.remap``): the users with an event of a changed item re-folded from their own
        histories (O(their events)), and when peer codes moved, the peer columns rebuilt from
        every user's history (numpy, O(events), no store read). ``correct=False`` leaves those
        corrections to the caller's ``correct()`` (they read and write only the fork, so they
        need no lock against events folding into this state; fold no event into the fork before)."""
        twin = OnlineFeatureState.__new__(OnlineFeatureState)
        twin.catalog, twin.spec = catalog, spec
        old_offset, old_groups = self._code_offset, self._n_groups
        widths = twin._layout(catalog)
        moved = peers_moved(self.catalog, self.spec, catalog, spec)
        old_widths = np.diff(np.r_[old_offset, self._items.n_codes]).astype(np.int64)
        columns = (np.concatenate([twin._code_offset[g] + np.arange(old_widths[g]) for g in range(old_groups)])
                   if old_groups and not moved else np.empty(0, np.int64))
        twin._items = self._items.fork(int(sum(widths)), columns, n_items=twin._n_items)
        twin._all_events, twin._item_users = self._all_events.fork(), self._item_users.fork()
        twin._group_events = SortedCounts() if moved else self._group_events.fork()
        twin._users = dict(self._users)
        twin._owned, self._owned = set(), set()  # every user record is now shared by both
        twin._todo = (self.catalog, moved)
        if correct:
            twin.correct()
        return twin

    def correct(self) -> None:
        """The corrections a ``fork(correct=False)`` left: re-fold the users of items whose catalog
        row changed, rebuild the peer columns when peer codes moved (see ``fork``)."""
        todo, self._todo = self._todo, None
        if todo is None:
            return
        old_catalog, moved = todo
        changed = changed_items(old_catalog, self.catalog)
        if len(changed):
            self._refold(np.unique(self._item_users.in_groups(changed) & _LOW) - TIME_OFFSET)
        if moved:
            self._refold_peers()

    def _histories(self, users: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every event of ``users`` (each a key of ``_users``): (users, items, times) int64,
        int64, float64 [n], each user's events in time order."""
        recs = [self._users[u] for u in users]
        lens = [len(r.ts) for r in recs]
        n = sum(lens)
        items = np.fromiter(itertools.chain.from_iterable(r.items for r in recs), np.int64, n)
        ts = np.fromiter(itertools.chain.from_iterable(r.ts for r in recs), np.float64, n)
        return np.repeat(np.asarray(users, np.int64), lens), items, ts

    def _refold(self, users: np.ndarray) -> None:
        """Fold the catalog-row part of ``users``' state (engagement, age and attribute sums)
        again from their own event histories under this state's catalog."""
        n_attr = len(self.spec.item_numeric)
        users_list = [u for u in users.tolist() if u in self._users]
        for user in users_list:
            u = self._user(user, n_attr)
            u.cats, u.creators = {}, {}
            u.age_sum, u.age_cnt = 0.0, 0
            u.attr_sum, u.attr_cnt = np.zeros(n_attr), np.zeros(n_attr)
            u.version += 1
        self._fold_rows(*self._histories(users_list))

    def _refold_peers(self) -> None:
        """Rebuild the (peer code, time) multiset and the per-item peer columns (emptied by
        ``fork``) from every user's history under this state's catalog."""
        users, items, ts = self._histories(list(self._users))
        self._items.add_peers(items, ts, self._fold_peers(users, ts))

    def _user(self, user: int, n_attr: int) -> UserState:
        """The user's record to write to: created when new, copied once when shared by a fork."""
        u = self._users.get(user)
        if u is None:
            u = self._users[user] = UserState(attr_sum=np.zeros(n_attr), attr_cnt=np.zeros(n_attr))
        elif self._owned is not None and user not in self._owned:
            u = self._users[user] = u.copy()
        if self._owned is not None:
            self._owned.add(user)
        return u

    def _item_categories(self, inside: np.ndarray, safe: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (position, category) pair of a list of items: (positions int [m], categories
        int64 [m], categories per position int [n]); ``inside`` marks positions whose item is in
        the catalog, ``safe`` is the item index there (any valid index elsewhere)."""
        ic = self.catalog.item_cat
        n = len(inside)
        lens = (np.where(inside, ic.indptr[safe + 1] - ic.indptr[safe], 0) if self._n_items  # not np.diff:
                else np.zeros(n, np.int64))  # that is O(catalog) per request
        rows = np.repeat(np.arange(n), lens)
        if not len(rows):
            return rows, np.empty(0, np.int64), lens
        first = np.repeat(ic.indptr[safe], lens)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
        return rows, ic.indices[first + offs].astype(np.int64), lens

    def add_event(self, user: int, item: int, ts: float) -> None:
        """Fold one positive event into the state (events may arrive out of order)."""
        self.add_events(np.array([user], np.int64), np.array([item], np.int64), np.array([ts], np.float64))

    def add_events(self, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> None:
        """Fold many positive events in at once, in any order: the state is the same as after
        adding them one at a time (decayed sums equal up to float rounding). Computed with numpy
        group-bys, so a replay of the whole event log at bundle load holds no per-event Python
        loop. ``users``/``items``: int [n] dense indices (items < 2**30); ``ts``: [n] seconds."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        ts = np.floor(np.asarray(ts, np.float64))
        if not len(ts):
            return
        if items.min() < 0 or items.max() >= GROUP_LIMIT:
            raise ValueError(f"item indices must be in [0, {GROUP_LIMIT}); got {items.min()}..{items.max()}")
        ts_obj, item_obj = ts.tolist(), items.tolist()
        self._all_events.add(pack(0, ts))
        self._item_users.add(pack(items, users))
        n_attr = len(self.spec.item_numeric)
        ts_by_user = _groups(users, ts, ts_obj)
        items_by_user = _groups(users, ts, item_obj)  # both in time order: aligned per user
        for (user, t), (_, its) in zip(ts_by_user, items_by_user, strict=True):
            u = self._user(user, n_attr)
            u.ts, u.items = merged_history(u.ts, u.items, t, its)
            u.version += 1
        self._fold_rows(users, items, ts)
        self._items.add(items, ts, self._fold_peers(users, ts))

    def _fold_rows(self, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> None:
        """Fold events' catalog-row part into their users' records (which exist): engagement,
        item-age and attribute sums."""
        if not len(ts):
            return
        hl = self.spec.half_life_s
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
        for g, user in enumerate(uniq.tolist()):
            u = self._users[user]
            u.age_sum += float(age_sum[g])
            u.age_cnt += int(age_cnt[g])
            if n_attr:
                u.attr_sum += attr_sum[g]
                u.attr_cnt += attr_cnt[g]
        # (user, category) and (user, creator) engagement
        ev, cats, _ = self._item_categories(inside, safe)
        self._engage(users[ev], cats, ts[ev], hl, "cats")
        creator = np.where(inside, self.catalog.item_creator[safe] if self._n_items else -1, -1)
        has = creator >= 0
        self._engage(users[has], creator[has], ts[has], hl, "creators")

    def _fold_peers(self, users: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Fold events into the (peer code, time) multiset; returns their item-count columns,
        int64 [n, groups] (-1: the user has no code in that group)."""
        groups = self.catalog.user_groups
        in_users = (users >= 0) & (users < groups.shape[0])
        cols = np.full((len(ts), self._n_groups), -1, np.int64)
        for g in range(self._n_groups):
            code = np.full(len(ts), -1, np.int64)
            code[in_users] = groups[users[in_users], g]
            ok = code >= 0
            if ok.any():
                self._group_events.add(pack(g * _CODE_SPAN + code[ok], ts[ok]))
                cols[ok, g] = self._code_offset[g] + code[ok]
        return cols

    def _engage(self, users: np.ndarray, keys: np.ndarray, ts: np.ndarray, hl: float, attr: str) -> None:
        """Group (user, key) events into ``Engagement`` records of ``_users[user].<attr>``."""
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
                table.update(zip(keys, map(Engagement, ns, ds, rs, rs)))
                continue
            for key, n, d, r in zip(keys, ns, ds, rs, strict=True):
                e = table.get(key)
                if e is None:
                    table[key] = Engagement(n, d, r, r)
                else:  # merge with earlier state: both sums decayed to the newer reference time;
                    new_ref = max(e.ref, r)  # a new record, never a change in place (fork shares them)
                    table[key] = Engagement(
                        e.count + n, e.decay * math.exp2(-(new_ref - e.ref) / hl) + d * math.exp2(-(new_ref - r) / hl),
                        new_ref, max(e.last, r))

    def has_history(self, user: int) -> bool:
        """True when at least one event of ``user`` has been added."""
        u = self._users.get(user)
        return u is not None and len(u.ts) > 0

    def features(self, user: int, items: np.ndarray, t: float, *,
                 src_score: dict[str, np.ndarray], src_rank: dict[str, np.ndarray],
                 device: str | None = None) -> np.ndarray:
        """float32 [len(items), len(spec.names)] for one request of ``user`` at time ``t``.

        src_score / src_rank: per spec source, float [len(items)] (NaN where not proposed).
        Vectorised over the candidates (see the module docstring)."""
        spec, hl = self.spec, self.spec.half_life_s
        items = np.asarray(items, np.int64)
        n = len(items)
        n_attr = len(spec.item_numeric)
        u = self._users.get(user) or UserState(attr_sum=np.zeros(n_attr), attr_cnt=np.zeros(n_attr))
        n_hist = len(u.ts)
        first = u.ts[0] if n_hist else math.nan
        last = u.ts[-1] if n_hist else math.nan
        cat_table, creator_table, hist_items = u.arrays()
        inside = (items >= 0) & (items < self._n_items)
        safe = np.where(inside, items, 0)
        if self._n_items:
            created = np.where(inside, self.catalog.item_created[safe], np.nan).astype(np.float64)
            creators = np.where(inside, self.catalog.item_creator[safe], -1).astype(np.int64)
        else:
            created, creators = np.full(n, np.nan), np.full(n, -1, np.int64)
        # the user's engagement with each candidate's categories (max / sum over them)
        rows, cats, lens = self._item_categories(inside, safe)
        hit, pos = cat_table.lookup(cats)
        r, p = rows[hit], pos[hit]
        count = cat_table.count[p]
        decay = cat_table.decay[p] * np.exp2(-(t - cat_table.ref[p]) / hl)
        cmax, dmax, clast = np.zeros(n), np.zeros(n), np.full(n, -math.inf)
        np.maximum.at(cmax, r, count)
        np.maximum.at(dmax, r, decay)
        np.maximum.at(clast, r, cat_table.last[p])
        csum = np.bincount(r, weights=count, minlength=n).astype(np.float64)
        dsum = np.bincount(r, weights=decay, minlength=n).astype(np.float64)
        clast[clast == -math.inf] = np.nan
        # ... and with each candidate's creator
        hit, pos = creator_table.lookup(creators)
        hit &= creators >= 0
        p = pos[hit]
        crc, crd, crl = np.zeros(n), np.zeros(n), np.full(n, math.nan)
        crc[hit] = creator_table.count[p]
        crd[hit] = creator_table.decay[p] * np.exp2(-(t - creator_table.ref[p]) / hl)
        crl[hit] = creator_table.last[p]
        # item popularity: events before t, in each window, and in the user's active span (mostly
        # gathers of per-item totals: see item_counts.py)
        windows = list(spec.windows.items())
        bounds = np.array([*(t - sec for _, sec in windows), first if n_hist else -math.inf])
        before, since = self._items.counts_before(items, t, bounds)
        pop_all = before.astype(np.float64)
        pop = {w: since[j].astype(np.float64) for j, (w, _) in enumerate(windows)}
        pop_span = since[-1].astype(np.float64) if n_hist else np.full(n, np.nan)
        if n_hist:  # the history items' popularity before t (the user's popularity preference)
            hist, _ = self._items.counts_before(hist_items, t, np.empty(0))
            pop_sum = float(np.log1p(hist.astype(np.float64)).sum())
        else:
            pop_sum = 0.0
        recent = n_hist - bisect.bisect_left(u.ts, t - spec.activity_window_s)
        all_below = self._all_events.count_below(pack(0, np.array([t, first if n_hist else t])))
        all_events = float(all_below[0])
        events_span = float(all_below[0] - all_below[1]) if n_hist else math.nan
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
        live = [(g, code) for g, code in enumerate(codes) if code >= 0]
        if live:
            gid = np.array([g * _CODE_SPAN + code for g, code in live], np.int64)
            grp = self._group_events.count_below(pack(np.concatenate([gid, gid]), np.repeat([t, -math.inf], len(gid))))
            cols = [int(self._code_offset[g]) + code for g, code in live]
            peer = self._items.peer_before(items, t, cols)
        for j, (g, _) in enumerate(live):
            peer_events[:, g] = float(grp[j] - grp[len(live) + j])
            peer_pop[:, g] = peer[:, j]
        ones = np.ones(n)
        agg = Aggregates(
            row_list=np.zeros(n, np.int64), t=np.full(n, float(t)),
            device=np.full(n, spec.device_code(device)),
            src_score={s: np.asarray(src_score[s], np.float64) for s in spec.sources},
            src_rank={s: np.asarray(src_rank[s], np.float64) for s in spec.sources},
            cat_count_max=cmax, cat_count_sum=csum, cat_decay_max=dmax, cat_decay_sum=dsum,
            cat_last=clast, item_ncat=lens.astype(np.float64), cr_count=crc, cr_decay=crd, cr_last=crl,
            pop=pop, pop_all=pop_all, pop_span=pop_span,
            events_span=np.full(n, events_span), peer_pop=peer_pop, peer_events=peer_events,
            all_events=np.full(n, all_events), item_created=created,
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

"""Data passed between the pipeline stages: retrieve -> rank -> re-rank.

Everything inside the pipeline uses dense internal item indices (int32, see winnow.core.ids);
external ids appear only at the HTTP edge. Arrays are columnar so one request over ~500
candidates stays in numpy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from winnow.core.ids import IdMap

NO_CATEGORY = -1


class Catalog:
    """Item metadata by internal index; mutable in place (availability patches, new items).

    Attributes (all length n_items, row i describes item index i):
        category: int32 primary category code into ``category_names`` (NO_CATEGORY if none).
        available: bool; unavailable items are removed by the exclude rule.
        sponsored: bool; placed by the sponsored rule.
        created_at: int64 unix seconds, -1 when unknown (fresh source, freshness boost).
        popularity: float32 all-time popularity score (higher is more popular).
        trending: float32 time-decayed popularity.
        vectors: optional float32 [n_items_at_training, dim] item embeddings (MMR, similar items).
    """

    def __init__(self, item_ids: IdMap, *, category: np.ndarray, category_names: list[str],
                 available: np.ndarray, sponsored: np.ndarray, created_at: np.ndarray,
                 popularity: np.ndarray, trending: np.ndarray,
                 vectors: np.ndarray | None = None) -> None:
        n = len(item_ids)
        arrays = {"category": category, "available": available, "sponsored": sponsored,
                  "created_at": created_at, "popularity": popularity, "trending": trending}
        for name, arr in arrays.items():
            if len(arr) != n:
                raise ValueError(f"Catalog.{name} has {len(arr)} rows for {n} item ids")
        self.item_ids = item_ids
        self.category = np.asarray(category, np.int32)
        self.category_names = list(category_names)
        self._category_codes = {name: i for i, name in enumerate(self.category_names)}
        self.available = np.asarray(available, bool).copy()
        self.sponsored = np.asarray(sponsored, bool).copy()
        self.created_at = np.asarray(created_at, np.int64).copy()
        self.popularity = np.asarray(popularity, np.float32)
        self.trending = np.asarray(trending, np.float32)
        self.vectors = vectors
        self.popularity_max = float(self.popularity.max()) if n else 0.0
        self.changes = 0  # bumped by every upsert: caches of per-item lookups compare it
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.item_ids)

    def category_code(self, name: str, *, add: bool = False) -> int:
        """Code of a category name; NO_CATEGORY when unknown (or a new code with add=True)."""
        code = self._category_codes.get(name)
        if code is None:
            if not add:
                return NO_CATEGORY
            code = len(self.category_names)
            self.category_names.append(name)
            self._category_codes[name] = code
        return code

    def upsert(self, item_id: str, *, categories: list[str] | None = None,
               available: bool | None = None, sponsored: bool | None = None,
               created_at: int | None = None) -> int:
        """Add or update one item (online catalog change); returns its index.

        New items get zero popularity and no vector; arrays grow by copy then swap, so a
        concurrent reader sees either the old or the new arrays, never a torn one.
        """
        with self._lock:
            idx = self.item_ids.get(item_id)
            if idx < 0:
                n = len(self.item_ids)
                self.category = np.append(self.category, np.int32(NO_CATEGORY))
                self.available = np.append(self.available, True)
                self.sponsored = np.append(self.sponsored, False)
                self.created_at = np.append(self.created_at, np.int64(-1))
                self.popularity = np.append(self.popularity, np.float32(0))
                self.trending = np.append(self.trending, np.float32(0))
                idx = self.item_ids.add(item_id)
                assert idx == n
            if categories is not None:
                self.category[idx] = (self.category_code(categories[0], add=True)
                                      if categories else NO_CATEGORY)
            if available is not None:
                self.available[idx] = available
            if sponsored is not None:
                self.sponsored[idx] = sponsored
            if created_at is not None:
                self.created_at[idx] = created_at
            self.changes += 1
            return idx

    def extend(self, item_ids: list[str], *, categories: list[list[str]], available: np.ndarray,
               sponsored: np.ndarray, created_at: np.ndarray) -> None:
        """Add many items this catalog does not know yet, each array grown once (``upsert`` in
        a loop copies every array per item: O(catalog x new items)). Per item: its categories
        (the first one is its category), flags and creation time (-1: unknown). ValueError
        naming the first id already present or given twice, or a length mismatch; nothing is
        added then."""
        n_new = len(item_ids)
        for name, arr in (("categories", categories), ("available", available), ("sponsored", sponsored),
                          ("created_at", created_at)):
            if len(arr) != n_new:
                raise ValueError(f"Catalog.extend: {name} has {len(arr)} rows for {n_new} item ids")
        with self._lock:
            seen: set[str] = set()
            for iid in map(str, item_ids):
                if self.item_ids.get(iid) >= 0 or iid in seen:
                    raise ValueError(f"Catalog.extend: item {iid!r} is already in the catalog or given twice")
                seen.add(iid)
            if not n_new:
                return
            codes = np.array([self.category_code(c[0], add=True) if c else NO_CATEGORY for c in categories],
                             np.int32)
            self.category = np.concatenate([self.category, codes])
            self.available = np.concatenate([self.available, np.asarray(available, bool)])
            self.sponsored = np.concatenate([self.sponsored, np.asarray(sponsored, bool)])
            self.created_at = np.concatenate([self.created_at, np.asarray(created_at, np.int64)])
            self.popularity = np.concatenate([self.popularity, np.zeros(n_new, np.float32)])
            self.trending = np.concatenate([self.trending, np.zeros(n_new, np.float32)])
            self.item_ids.encode(list(map(str, item_ids)), add=True)  # last: readers bound items by it
            self.changes += 1


@dataclass
class UserView:
    """What the pipeline knows about the requesting user, from online state.

    Attributes:
        user_id: external id.
        known: the user has any history (else the cold-start chain is used).
        als_vector: float32 [factors] folded-in ALS user vector, or None.
        recent_items: int32 [r] recently interacted item indices, newest first.
        recent_weights: float32 [r] event weights of recent_items.
        purchased: int32 item indices the user purchased.
        seen_items / seen_at: int32 [s] item indices and their last event time (unix seconds).
        category_affinity: {category code: decayed interest in [0, 1]}, sums to <= 1.
    """

    user_id: str
    known: bool = False
    als_vector: np.ndarray | None = None
    recent_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    recent_weights: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    purchased: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    seen_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    seen_at: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    category_affinity: dict[int, float] = field(default_factory=dict)
    # profile (PUT /v1/users/{id}), read by the two_tower / content / segment_popular sources
    attributes: dict[str, Any] = field(default_factory=dict)
    interests: list[str] = field(default_factory=list)      # declared categories / creators
    interest_items: list[int] = field(default_factory=list)  # declared items (indices)
    user_index: int = -1  # the bundle's user index, -1 when unseen at training


@dataclass
class Request:
    """One recommendation request, resolved to internal indices."""

    user: UserView
    k: int
    now: float  # unix seconds
    surface: str = "default"
    exclude: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    categories: frozenset[int] | None = None  # request filter: allowed category codes
    explain: bool = False
    context: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""  # seeds the explore stage, so a request replays exactly


@dataclass
class Candidates:
    """Merged, de-duplicated retrieval output.

    items: int32 [n] unique item indices. source_scores[name]: float32 [n] raw score of that
    source, NaN where it did not propose the item; source_ranks[name]: int32 [n] 0-based rank
    within the source, -1 where absent. fallbacks: which fallbacks of the chain were used.
    """

    items: np.ndarray
    source_scores: dict[str, np.ndarray]
    source_ranks: dict[str, np.ndarray]
    source_quota: dict[str, int]
    fallbacks: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def sources_of(self, row: int) -> list[str]:
        """Names of the sources that proposed candidate ``row``."""
        return [name for name, ranks in self.source_ranks.items() if ranks[row] >= 0]


@dataclass
class RankedList:
    """Items best first. ``row`` maps each entry back to its Candidates row."""

    items: np.ndarray   # int32 [n]
    scores: np.ndarray  # float32 [n]
    row: np.ndarray     # int32 [n]

    def __len__(self) -> int:
        return len(self.items)

    def take(self, order: np.ndarray) -> RankedList:
        """Entries selected/reordered by an index array or boolean mask."""
        return RankedList(self.items[order], self.scores[order], self.row[order])


@dataclass
class RuleRecord:
    """What one re-ranking rule did. Item indices are internal."""

    rule: str
    removed: dict[int, str] = field(default_factory=dict)       # item -> reason
    moved: dict[int, tuple[int, int]] = field(default_factory=dict)  # item -> (from, to)
    boosted: dict[int, float] = field(default_factory=dict)     # item -> score delta

    def touched(self, item: int) -> dict[str, Any] | None:
        """This rule's effect on one item, for explain traces (None if untouched)."""
        out: dict[str, Any] = {}
        if item in self.removed:
            out["removed"] = self.removed[item]
        if item in self.moved:
            out["moved"] = {"from": self.moved[item][0], "to": self.moved[item][1]}
        if item in self.boosted:
            out["boost"] = self.boosted[item]
        return ({"rule": self.rule, **out}) if out else None


@dataclass
class RuleContext:
    """Read-only inputs of a rule besides the ranked list."""

    request: Request
    catalog: Catalog


class Rule(Protocol):
    """A re-ranking rule: a pure function of (ranked list, context) -> (list, what it did)."""

    @property
    def name(self) -> str: ...

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]: ...


class Ranker:
    """Ranking stage: one score per candidate (higher is better), float32 [n].

    What a ranker can do is declared here, never probed:

    - ``own_features`` False (the default): the pipeline computes ``candidate_features`` and
      calls ``score(candidates, features)``.
    - ``own_features`` True: the pipeline calls ``score_request(candidates, request)``; the
      ranker builds its own features (the learned ranker's live feature state). ``None`` -- a
      request it cannot score, e.g. a user it has no history for -- hands the request to the
      pipeline's blend of source scores.
    - ``explains`` True: ``explain(candidates, request, rows)`` gives, per candidate row, the
      features that contributed most; explain traces carry them.
    - ``weights``: source name -> blend weight, reported in explain traces (None: not a blend).
    """

    own_features: ClassVar[bool] = False
    explains: ClassVar[bool] = False
    weights: dict[str, float] | None = None

    def score(self, candidates: Candidates, features: dict[str, np.ndarray]) -> np.ndarray:
        """float32 [n] scores from the pipeline's candidate features."""
        raise NotImplementedError(f"{type(self).__name__} scores requests itself (own_features): "
                                  "call score_request")

    def score_request(self, candidates: Candidates, request: Request) -> np.ndarray | None:
        """float32 [n] scores from the ranker's own features, or None (see the class docstring)."""
        return None

    def explain(self, candidates: Candidates, request: Request,
                rows: np.ndarray) -> dict[int, list[dict[str, float]]]:
        """Row -> top feature contributions ({} when the ranker does not explain this request)."""
        return {}


@dataclass
class SlateItem:
    """One served item (internal index; the edge maps it to the external id)."""

    item: int
    score: float
    position: int
    sources: list[str]
    propensity: float = 1.0  # P(this item at this position | request) under the explore policy
    trace: dict[str, Any] | None = None
    rank: int = -1  # 0-based rank in the re-ranked list the explore stage chose from
    # source name -> [score, 0-based rank] of every source that proposed it (logged with the
    # impression: the ranker's source features when it trains on the impression log)
    src: dict[str, list[float]] | None = None


@dataclass
class Slate:
    """Pipeline output: the slate, the fallbacks used, per-stage seconds, and rule records."""

    items: list[SlateItem]
    fallbacks: list[str]
    n_candidates: int
    timings: dict[str, float]
    removed: list[dict[str, Any]] | None = None  # explain: items the rules removed, and why
    n_ranked: int = 0  # length of the re-ranked list the explore stage chose from
    policy: str = "deterministic"  # explore policy that picked the slate
    experiments: dict[str, str] = field(default_factory=dict)  # experiment -> variant (set by the service)
    arm: str | None = None  # rollout arm that served it, champion | challenger (set by the service)
    # the merged retrieval candidates (int32 [n_candidates] item indices, retrieval order): a
    # reference to the array the funnel built, no copy; the service logs a sampled share of them
    candidates: np.ndarray | None = None

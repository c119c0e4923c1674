"""A seeded synthetic world: users, a catalog and timestamped events with known ground truth.

The generative model (all draws come from one ``numpy.random.Generator(seed)``, in a fixed
order, so the same arguments give identical frames):

- A latent space of ``dim`` dimensions. Each category has a unit centroid; each demographic value
  (age bucket, gender, locale, device) has an offset vector. A user's taste is the normalised
  sum of their demographic offsets (so segments share tastes and segment popularity carries
  signal) and personal noise. Users declare 0-2 interests (category names).
- Items have 1-3 categories (Zipfian over categories), a creator (Zipfian; 60% of a creator's
  items share the creator's home category as their primary one), a vector
  near their categories' centroids, a power-law popularity and a ``created_at``; titles and texts
  are drawn from a per-category vocabulary, so text carries the category signal.
- Each *choice* (knobs in ``ChoiceModel``) picks a user (activity is log-normal) and a time uniformly in the window, draws
  ``n_candidates`` items from a proposal mixing global popularity and popularity within a
  category the user likes (softmax of taste . centroid), drops items not yet created, and picks
  one with probability softmax(``taste_weight`` * taste . item + category bonus). Because the
  proposal is popularity-weighted the result mixes taste affinity and popularity.
- A choice emits a funnel of rows: view, then click, add_to_cart, purchase with probabilities
  rising with affinity (view >> click > add_to_cart > purchase); a share of purchases is followed
  by a ``rating`` event (value 1-5). Rows are cut at exactly ``n_events``.

Memory is bounded by chunking choices (never a users x items matrix): 1M items x 10M events fit
in a few GiB; see bench/synthetic.py. External ids are ``u<k>``, ``i<k>``, ``c<k>`` strings whose
number is the dense index used in the ground-truth arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from winnow.data.schema import EVENT_COLUMNS, ITEM_COLUMNS, USER_COLUMNS
from winnow.data.synthetic_text import catalog_text, vocabulary

DAY = 86_400
DEFAULT_START = 1_700_000_000  # 2023-11-14 UTC
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating")
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("f", "m", "x")
LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP", "hi-IN")
DEVICES = ("mobile", "desktop", "tablet")

@dataclass(frozen=True)
class SyntheticWorld:
    """A generated world. Frames use winnow.data.schema columns; arrays are the ground truth.

    Attributes:
        events: EVENT_COLUMNS, ``n_events`` rows sorted by timestamp (external ids).
        items: ITEM_COLUMNS, row k describes item ``i<k>`` (dense index k).
        users: USER_COLUMNS, row k describes user ``u<k>``.
        user_factors: float32 [n_users, dim] unit taste vectors.
        item_factors: float32 [n_items, dim] unit item vectors.
        item_popularity: float64 [n_items] prior popularity shares (sum to 1).
        item_category: int32 [n_items] primary category index into ``category_names``.
        category_names: the category labels used in ``items.categories``.
    """

    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_popularity: np.ndarray
    item_category: np.ndarray
    category_names: tuple[str, ...]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _zipf(n: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return p / p.sum()


def _strings(prefix: str, idx: np.ndarray) -> pa.Array:
    """Arrow strings ``prefix + str(idx)`` without Python objects per row."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(idx), pa.string()), "")


def _as_str_series(values: pa.Array) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"))


@dataclass(frozen=True)
class ChoiceModel:
    """Knobs of the generative model (defaults: ALS beats popularity ~2x on the demo world).

    dim: latent dimension of the ground-truth vectors. taste_weight, category_bonus: strength of
    taste affinity (taste . item) and of category preference in the choice softmax.
    popularity_exponent: Zipf exponent of item popularity (higher: more head-heavy).
    n_candidates: proposal size per choice (larger: choices follow taste more closely).
    item_noise: per-dimension noise of item vectors around their category centroids.
    rating_share: share of purchases followed by a ``rating`` event.
    """

    dim: int = 16
    taste_weight: float = 20.0
    category_bonus: float = 1.0
    popularity_exponent: float = 0.75
    n_candidates: int = 48
    item_noise: float = 0.35
    rating_share: float = 0.3

    def __post_init__(self) -> None:
        if self.dim < 1 or self.n_candidates < 1:
            raise ValueError(f"ChoiceModel: dim and n_candidates must be >= 1, got {self}")
        if not 0.0 <= self.rating_share <= 1.0 or self.popularity_exponent < 0 or self.item_noise < 0:
            raise ValueError(f"ChoiceModel: rating_share must be in [0, 1] and popularity_exponent, "
                             f"item_noise >= 0, got {self}")


def generate_world(n_users: int, n_items: int, n_events: int, *, seed: int = 0,
                   n_categories: int = 20, n_creators: int | None = None,
                   start: int = DEFAULT_START, days: int = 90,
                   model: ChoiceModel = ChoiceModel(), chunk: int = 20_000) -> SyntheticWorld:
    """Generate a world (see the module docstring for the model).

    Args:
        n_users, n_items, n_events: sizes; events is exactly ``n_events`` rows.
        seed: same arguments and seed -> identical frames and arrays.
        n_categories: number of categories (the first 20 have readable English vocabularies).
        n_creators: number of creators (default ``max(1, n_items // 25)``).
        start, days: event window ``[start, start + days * 86400)`` in unix seconds. 60% of
            items exist before ``start``, the rest appear uniformly in the first 90% of the window.
        model: the choice model's knobs (see ChoiceModel).
        chunk: choices generated per vectorised step (bounds memory; part of the seeded result).
    """
    for name, val in (("n_users", n_users), ("n_items", n_items), ("n_events", n_events),
                      ("n_categories", n_categories), ("days", days), ("chunk", chunk)):
        if int(val) < 1:
            raise ValueError(f"generate_world: {name} must be >= 1, got {val!r}")
    rng, dim = np.random.default_rng(seed), model.dim
    n_creators = max(1, n_items // 25) if n_creators is None else int(n_creators)
    if n_creators < 1:
        raise ValueError(f"generate_world: n_creators must be >= 1, got {n_creators!r}")
    names, vocab = vocabulary(n_categories)

    # --- latent structure -----------------------------------------------------------------
    centroids = _unit(rng.standard_normal((n_categories, dim)))
    demo_sizes = (len(AGE_BUCKETS), len(GENDERS), len(LOCALES), len(DEVICES))
    demo_offsets = [rng.standard_normal((s, dim)).astype(np.float32) for s in demo_sizes]
    demo_probs = [_zipf(s, 0.5) for s in demo_sizes]

    # --- users ----------------------------------------------------------------------------
    demo = np.stack([rng.choice(s, size=n_users, p=p) for s, p in zip(demo_sizes, demo_probs)], 1)
    taste = 0.9 * rng.standard_normal((n_users, dim)).astype(np.float32)
    for j, off in enumerate(demo_offsets):
        taste += 0.6 * off[demo[:, j]]
    taste = _unit(taste)
    activity = rng.lognormal(0.0, 1.0, n_users)
    user_created = start - rng.integers(0, 365 * DAY, n_users)
    n_interests = rng.choice(3, size=n_users, p=[0.5, 0.3, 0.2])
    top_cats = np.argsort(-(taste @ centroids.T), axis=1)[:, :2]

    # --- items ----------------------------------------------------------------------------
    cat_p = _zipf(n_categories, 1.0)[rng.permutation(n_categories)]
    n_cats = rng.choice(3, size=n_items, p=[0.6, 0.3, 0.1]) + 1
    cats = rng.choice(n_categories, size=(n_items, 3), p=cat_p).astype(np.int32)
    # Creators specialise: 60% of a creator's items have the creator's home category first.
    creator = rng.choice(n_creators, size=n_items, p=_zipf(n_creators, 0.8))
    home = rng.choice(n_categories, size=n_creators, p=cat_p).astype(np.int32)
    cats[:, 0] = np.where(rng.random(n_items) < 0.6, home[creator], cats[:, 0])
    primary = cats[:, 0].copy()
    noise = rng.standard_normal((n_items, dim)).astype(np.float32)
    item_vec = centroids[cats[:, 0]] + model.item_noise * noise
    item_vec += 0.3 * (n_cats[:, None] > 1) * centroids[cats[:, 1]]
    item_vec += 0.2 * (n_cats[:, None] > 2) * centroids[cats[:, 2]]
    item_vec = _unit(item_vec)
    popularity = _zipf(n_items, model.popularity_exponent)[rng.permutation(n_items)]
    pre = rng.random(n_items) < 0.6
    created = np.where(pre, start - rng.integers(1, 730 * DAY, n_items),
                       start + rng.integers(0, int(0.9 * days * DAY), n_items)).astype(np.int64)
    price = np.round(rng.lognormal(3.0, 0.8, n_items), 2)
    sponsored = rng.random(n_items) < 0.01
    items = _items_frame(rng, names, vocab, cats, n_cats, creator, created, price, sponsored)

    # --- events ---------------------------------------------------------------------------
    order = np.argsort(primary, kind="stable")            # items grouped by primary category
    cum = np.cumsum(popularity[order])
    cat_end = np.searchsorted(primary[order], np.arange(n_categories), side="right")
    cat_lo = np.concatenate([[0.0], cum])[np.r_[0, cat_end[:-1]]]
    cat_hi = np.concatenate([[0.0], cum])[cat_end]
    user_cdf = np.cumsum(activity / activity.sum())
    gen = _EventGen(rng, taste, item_vec, centroids, primary, created, order, cum, cat_lo,
                    cat_hi, user_cdf, start, days, model)
    events = gen.run(n_events, chunk, model.rating_share, demo[:, 3])

    users = pd.DataFrame({
        "user_id": _as_str_series(_strings("u", np.arange(n_users))),
        "created_at": user_created.astype(np.int64),
        "attributes": [
            {"age": AGE_BUCKETS[a], "gender": GENDERS[g], "locale": LOCALES[lc], "device": DEVICES[d]}
            for a, g, lc, d in demo.tolist()],
        "interests": [[names[c] for c in row[:m]] for row, m in zip(top_cats.tolist(), n_interests)],
    }, columns=list(USER_COLUMNS))
    return SyntheticWorld(events=events, items=items, users=users, user_factors=taste,
                          item_factors=item_vec, item_popularity=popularity,
                          item_category=primary, category_names=names)


def _items_frame(rng: np.random.Generator, names: tuple[str, ...], vocab: list[tuple[str, ...]],
                 cats: np.ndarray, n_cats: np.ndarray, creator: np.ndarray, created: np.ndarray,
                 price: np.ndarray, sponsored: np.ndarray) -> pd.DataFrame:
    """Catalog frame (ITEM_COLUMNS); titles and texts from winnow.data.synthetic_text."""
    n = len(cats)
    titles, texts = catalog_text(rng, vocab, cats, n_cats)
    cat_lists = [[names[c] for c in row[:m]] for row, m in zip(cats.tolist(), n_cats.tolist())]
    for lst in cat_lists:  # a repeated draw is one category, kept in first-seen order
        if len(lst) > 1 and len(set(lst)) < len(lst):
            lst[:] = list(dict.fromkeys(lst))
    return pd.DataFrame({
        "item_id": _as_str_series(_strings("i", np.arange(n))),
        "title": _as_str_series(titles),
        "text": _as_str_series(texts),
        "categories": cat_lists,
        "creator": _as_str_series(_strings("c", creator)),
        "created_at": created,
        "available": np.ones(n, bool),
        "sponsored": sponsored,
        "attributes": [{"price": p} for p in price.tolist()],
    }, columns=list(ITEM_COLUMNS))


class _EventGen:
    """Chunked choice model; holds the arrays the per-chunk steps share."""

    def __init__(self, rng: np.random.Generator, taste: np.ndarray, item_vec: np.ndarray,
                 centroids: np.ndarray, primary: np.ndarray, created: np.ndarray,
                 order: np.ndarray, cum: np.ndarray, cat_lo: np.ndarray, cat_hi: np.ndarray,
                 user_cdf: np.ndarray, start: int, days: int, model: ChoiceModel) -> None:
        self.rng, self.taste, self.item_vec, self.centroids = rng, taste, item_vec, centroids
        self.primary, self.created, self.order, self.cum = primary, created, order, cum
        self.cat_lo, self.cat_hi, self.user_cdf = cat_lo, cat_hi, user_cdf
        self.start, self.span = start, days * DAY
        self.tw, self.cb, self.m = model.taste_weight, model.category_bonus, model.n_candidates

    def _pick(self, targets: np.ndarray) -> np.ndarray:
        """Items at popularity-CDF positions ``targets`` (in [0, 1)). Queries are sorted first:
        random binary searches over a 1M-entry CDF are cache-bound (4x slower)."""
        flat = targets.ravel() * self.cum[-1]
        srt = np.argsort(flat)
        pos = np.empty(len(flat), np.int64)
        pos[srt] = np.searchsorted(self.cum, flat[srt], side="right")
        return self.order[np.minimum(pos, len(self.order) - 1)].reshape(targets.shape)

    def choices(self, n: int) -> tuple[np.ndarray, ...]:
        """``n`` choices -> (user, item, timestamp, taste . item of the chosen item)."""
        rng, m = self.rng, self.m
        user = np.minimum(np.searchsorted(self.user_cdf, rng.random(n) * self.user_cdf[-1]),
                          len(self.user_cdf) - 1)
        ts = self.start + rng.integers(0, self.span, n)
        tu = self.taste[user]
        cat_aff = tu @ self.centroids.T                              # [n, C]
        g = cat_aff * 4.0 - np.log(-np.log(rng.random(cat_aff.shape)))  # Gumbel-max sample
        liked = np.argmax(g, axis=1)
        half = m // 2
        glob = rng.random((n, m - half))
        lo, hi = self.cat_lo[liked][:, None], self.cat_hi[liked][:, None]
        local = (lo + rng.random((n, half)) * (hi - lo)) / self.cum[-1]
        cand = self._pick(np.concatenate([glob, local], axis=1))     # [n, m]
        vecs = np.take(self.item_vec, cand.ravel(), axis=0).reshape(n, m, -1)
        dots = np.matmul(vecs, tu[:, :, None])[..., 0]
        score = self.tw * dots + self.cb * np.take_along_axis(cat_aff, self.primary[cand], 1)
        alive = self.created[cand] <= ts[:, None]
        # Nothing created yet among the candidates: take the oldest one, and move the event
        # to its creation time (always inside the window).
        none = ~alive.any(axis=1)
        if none.any():
            oldest = np.argmin(self.created[cand[none]], axis=1)
            alive[np.flatnonzero(none), oldest] = True
            ts[none] = np.maximum(ts[none], self.created[cand[none, oldest]])
        score = np.where(alive, score, -np.inf)
        pick = np.argmax(score - np.log(-np.log(rng.random(score.shape))), axis=1)
        item = cand[np.arange(n), pick]
        dot = dots[np.arange(n), pick]
        return user, item, ts, dot

    def run(self, n_events: int, chunk: int, rating_share: float,
            device: np.ndarray) -> pd.DataFrame:
        """Funnel rows from chunks of choices until ``n_events``, sorted by time, as a frame."""
        parts: list[tuple[np.ndarray, ...]] = []
        total = 0
        while total < n_events:
            user, item, ts, dot = self.choices(chunk)
            aff = 3.0 * dot                                          # dot in [-1, 1]
            depth = np.zeros(chunk, np.int8)                         # 0 view .. 3 purchase
            for step, base in enumerate((-1.6, -1.0, -1.0)):
                p = 1.0 / (1.0 + np.exp(-(base + aff - 1.0)))
                depth += (depth == step) & (self.rng.random(chunk) < p)
            rated = (depth == 3) & (self.rng.random(chunk) < rating_share)
            reps = depth.astype(np.int64) + 1 + rated
            rows = np.repeat(np.arange(chunk), reps)
            step = np.arange(len(rows)) - np.repeat(np.cumsum(reps) - reps, reps)
            gaps = self.rng.integers(5, 600, len(rows)) * (step > 0)
            first = np.cumsum(reps) - reps                           # row of each choice's view
            cg = np.cumsum(gaps)                                     # gaps[first] == 0
            t = np.minimum(ts[rows] + cg - np.repeat(cg[first], reps), self.start + self.span - 1)
            noise = self.rng.normal(0.0, 0.7, chunk)
            rating = np.clip(np.rint(3.0 + 2.5 * dot + noise), 1, 5)[rows]
            value = np.where(step == 4, rating, np.nan)
            parts.append((user[rows].astype(np.int32), item[rows].astype(np.int32),
                          step.astype(np.int8), value, t.astype(np.int64)))
            total += len(rows)
        user, item, etype, value, t = (np.concatenate(c)[:n_events] for c in zip(*parts))
        dev = np.where(self.rng.random(n_events) < 0.8, device[user],
                       self.rng.integers(0, len(DEVICES), n_events))
        srt = np.argsort(t, kind="stable")
        user, item, etype, value, t, dev = (a[srt] for a in (user, item, etype, value, t, dev))
        ctx = pa.array([f'{{"device": "{d}"}}' for d in DEVICES]).take(pa.array(dev))
        return pd.DataFrame({
            "user_id": _as_str_series(_strings("u", user)),
            "item_id": _as_str_series(_strings("i", item)),
            "event_type": _as_str_series(pa.array(EVENT_TYPES).take(pa.array(etype))),
            "value": value,
            "timestamp": t,
            "event_id": _as_str_series(_strings("e", srt)),
            "context": _as_str_series(ctx),
        }, columns=list(EVENT_COLUMNS))


def write_world(world: SyntheticWorld, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write events.csv, items.csv and users.csv in the CSV import format.

    events: user_id,item_id,timestamp,event_type,value (value empty when absent).
    items: item_id,title,text,categories (|-joined),creator,created_at,available,sponsored,price.
    users: user_id,created_at,age,gender,locale,device,interests (|-joined).
    Each file is written to a temporary name and renamed, so none is ever half-written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ev = world.events
    ev_table = pa.table({c: pa.array(ev[c]) for c in ("user_id", "item_id", "timestamp",
                                                      "event_type", "value")})
    it = world.items
    items = pd.DataFrame({c: it[c] for c in ("item_id", "title", "text")})
    items["categories"] = ["|".join(c) for c in it["categories"]]
    for c in ("creator", "created_at", "available", "sponsored"):
        items[c] = it[c]
    items["price"] = [a["price"] for a in it["attributes"]]
    us = world.users
    attrs = pd.DataFrame(list(us["attributes"]), index=us.index)
    users = pd.concat([us[["user_id", "created_at"]], attrs], axis=1)
    users["interests"] = ["|".join(i) for i in us["interests"]]
    paths = {}
    for name, table in (("events", ev_table),
                        ("items", pa.Table.from_pandas(items, preserve_index=False)),
                        ("users", pa.Table.from_pandas(users, preserve_index=False))):
        path = out / f"{name}.csv"
        tmp = out / f".{name}.csv.tmp"
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="needed"))
        os.replace(tmp, path)
        paths[name] = path
    return paths

"""Sequential co-occurrence model against its formula, computed with plain Python loops."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from winnow.core.config import load_config
from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.models import sequence as seq_mod
from winnow.models.sequence import SequenceRecommender, neighbour_counts, tie_key

N_USERS, N_ITEMS = 30, 12


@pytest.fixture(scope="module")
def log() -> Interactions:
    rng = np.random.default_rng(7)
    users, items, ts = [], [], []
    for u in range(N_USERS):
        n = int(rng.integers(1, 9))
        users += [u] * n
        items += rng.choice(N_ITEMS, n, replace=True).tolist()  # repeats of one item happen
        ts += rng.integers(0, 5, n).tolist()  # many ties in time
    order = rng.permutation(len(users))  # rows in no particular order
    return Interactions.from_arrays(np.array(users)[order], np.array(items)[order],
                                    timestamp=np.array(ts)[order] + 1_700_000_000,
                                    n_users=N_USERS, n_items=N_ITEMS)


def _loop_counts(log: Interactions, window: int, decay: float, direction: str,
                 seed: int = 0) -> np.ndarray:
    per_user: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    keys = tie_key(log.user, log.item, seed).tolist()
    for u, i, t, key in zip(log.user.tolist(), log.item.tolist(), log.timestamp.tolist(), keys):
        per_user[u].append((t, key, i))
    c = np.zeros((N_ITEMS, N_ITEMS))
    for events in per_user.values():
        seq = [i for _, _, i in sorted(events)]  # time order, ties by the pseudo-random key
        for p in range(len(seq)):
            for d in range(1, window + 1):
                if p + d < len(seq) and seq[p] != seq[p + d]:
                    c[seq[p], seq[p + d]] += decay ** (d - 1)
                    if direction == "both":
                        c[seq[p + d], seq[p]] += decay ** (d - 1)
    return c


@pytest.mark.parametrize(("window", "decay", "direction"),
                         [(1, 1.0, "both"), (3, 0.5, "both"), (4, 0.9, "forward")])
def test_counts_match_loop(log, window, decay, direction, monkeypatch) -> None:
    expected = _loop_counts(log, window, decay, direction)
    got = neighbour_counts(log, window=window, decay=decay, direction=direction).toarray()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    monkeypatch.setattr(seq_mod, "CHUNK_PAIRS", 5)  # many small chunks: same counts
    np.testing.assert_allclose(neighbour_counts(log, window=window, decay=decay, direction=direction).toarray(),
                               expected, rtol=1e-12)
    assert np.all(np.diag(got) == 0)


def test_ties_in_time_follow_the_seeded_key_not_the_row_order(log) -> None:
    a = neighbour_counts(log, window=2, decay=1.0, direction="forward", seed=0).toarray()
    rows = np.random.default_rng(1).permutation(len(log))
    shuffled = log.subset(rows)
    np.testing.assert_array_equal(neighbour_counts(shuffled, window=2, decay=1.0, direction="forward",
                                                   seed=0).toarray(), a)
    other = neighbour_counts(log, window=2, decay=1.0, direction="forward", seed=3).toarray()
    assert not np.array_equal(other, a)  # the fixture has many ties: another seed, another order
    np.testing.assert_allclose(other, _loop_counts(log, 2, 1.0, "forward", seed=3))


def test_similarity_and_scores_match_formula(log) -> None:
    c = _loop_counts(log, 3, 0.8, "both")
    x = np.zeros((N_USERS, N_ITEMS))
    x[log.user, log.item] = 1.0
    n_i = x.sum(0)
    s = c / (np.sqrt(np.outer(n_i, n_i)) + 2.0)
    model = SequenceRecommender(window=3, decay=0.8, shrinkage=2.0, neighbours=N_ITEMS).fit(log)
    np.testing.assert_allclose(model.similarity_.toarray(), s, rtol=1e-5, atol=1e-7)
    weighted = np.zeros((N_USERS, N_ITEMS))
    np.add.at(weighted, (log.user, log.item), log.weight)
    np.testing.assert_allclose(model._score(np.arange(N_USERS)), weighted @ s, rtol=1e-5, atol=1e-6)


def test_neighbours_keeps_the_strongest(log) -> None:
    full = SequenceRecommender(window=3, neighbours=N_ITEMS).fit(log).similarity_.toarray()
    top2 = SequenceRecommender(window=3, neighbours=2).fit(log).similarity_.toarray()
    assert np.all((top2 > 0).sum(1) <= 2)
    for r in range(N_ITEMS):
        kept = np.flatnonzero(top2[r])
        if len(kept):
            assert full[r, kept].min() >= np.sort(full[r])[-2] - 1e-12


def test_order_matters_where_cooccurrence_does_not() -> None:
    """Two users touch the same three items; only the time order differs, and so do the pairs."""
    def fit(ts_a: list[int]) -> np.ndarray:
        inter = Interactions.from_arrays(np.array([0, 0, 0]), np.array([0, 1, 2]),
                                         timestamp=np.array(ts_a), n_users=1, n_items=3)
        return SequenceRecommender(window=1, shrinkage=0.0, neighbours=3).fit(inter).similarity_.toarray()
    first = fit([1, 2, 3])   # 0 -> 1 -> 2: (0, 2) are not adjacent
    second = fit([1, 3, 2])  # 0 -> 2 -> 1: (0, 1) are not adjacent
    assert first[0, 2] == 0 and first[0, 1] > 0
    assert second[0, 1] == 0 and second[0, 2] > 0


@pytest.mark.parametrize(("field", "value"), [("window", 0), ("decay", 0.0), ("decay", 1.5),
                                              ("shrinkage", -1.0), ("neighbours", 0),
                                              ("direction", "backward")])
def test_bad_config_names_the_field(tmp_path, field, value) -> None:
    with pytest.raises(ConfigError, match=f"models.sequence.{field}"):
        load_config(tmp_path, environ={}, overrides={"models": {"sequence": {field: value}}})
    with pytest.raises(ValueError, match=field):
        SequenceRecommender(**{field: value})

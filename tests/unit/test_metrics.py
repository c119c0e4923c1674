"""Offline metrics: hand-computed cases, a brute-force reference, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from winnow.data.interactions import Interactions
from winnow.metrics import evaluate_recs, gini, intra_list_diversity, per_user_metrics

L3 = math.log2(3)  # 1.5849625


def _inter(pairs: list[tuple[int, int]], n_users: int = 3, n_items: int = 6) -> Interactions:
    u, i = zip(*pairs)
    return Interactions.from_arrays(np.array(u), np.array(i), n_users=n_users, n_items=n_items)


# Test: user 0 relevant {1, 3}; user 1 relevant {0, 2, 4, 5}; user 2 has no test items.
TEST = _inter([(0, 1), (0, 3), (1, 0), (1, 4), (1, 5), (1, 2)])
RECS = np.array([[1, 2, 3],     # hits 1 0 1
                 [3, 0, 4],     # hits 0 1 1
                 [0, 0, 0]])    # not evaluated (no test items)
TRAIN = _inter([(0, 0), (0, 2), (1, 0), (2, 0), (2, 1)])
CATS = [["a"], ["a", "b"], ["b"], ["c"], ["c", "a"], ["a"]]


def test_hand_computed_per_user() -> None:
    pu = per_user_metrics(RECS, TEST, k=3)
    assert pu["user"].tolist() == [0, 1]
    # precision: 2/3 and 2/3
    np.testing.assert_allclose(pu["precision"], [2 / 3, 2 / 3])
    # recall: 2/2 and 2/4 (denominator n_rel)
    np.testing.assert_allclose(pu["recall"], [1.0, 0.5])
    # ndcg u0: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG (min(3,2)=2 hits) = 1 + 1/log2(3)
    # ndcg u1: DCG = 1/log2(3) + 1/log2(4); IDCG (3 hits) = 1 + 1/log2(3) + 1/2
    np.testing.assert_allclose(pu["ndcg"], [1.5 / (1 + 1 / L3), (1 / L3 + 0.5) / (1.5 + 1 / L3)])
    # AP sums: u0 P@1 + P@3 = 1 + 2/3 = 5/3; u1 P@2 + P@3 = 1/2 + 2/3 = 7/6
    # map divides by n_rel (2 and 4); map_min by min(k, n_rel) (2 and 3)
    np.testing.assert_allclose(pu["map"], [5 / 6, 7 / 24])
    np.testing.assert_allclose(pu["map_min"], [5 / 6, 7 / 18])
    np.testing.assert_allclose(pu["hit_rate"], [1.0, 1.0])
    np.testing.assert_allclose(pu["mrr"], [1.0, 0.5])


def test_hand_computed_means_and_beyond_accuracy() -> None:
    m = evaluate_recs(RECS, TEST, k=3, train=TRAIN, item_categories=CATS)
    assert m["n_users"] == 2
    assert m["precision@3"] == pytest.approx(2 / 3)
    assert m["recall@3"] == pytest.approx(0.75)
    assert m["map@3"] == pytest.approx((5 / 6 + 7 / 24) / 2)       # 27/48 = 0.5625
    assert m["map_min@3"] == pytest.approx((5 / 6 + 7 / 18) / 2)   # 22/36
    assert m["mrr@3"] == pytest.approx(0.75)
    # Shown (users 0, 1 only): items 1,2,3,3,0,4 -> 5 of 6 items.
    assert m["coverage@3"] == pytest.approx(5 / 6)
    # Exposure sorted [0,1,1,1,1,2], coefficients (2i-n-1) = -5,-3,-1,1,3,5: sum 10 / (6 * 6)
    assert m["gini@3"] == pytest.approx(10 / 36)
    # Train users 3; distinct users: item0 3, item1 1, item2 1, others 0 (counted as 1).
    # Novelty: item0 -log2(3/3) = 0, the five others log2(3): 5 log2(3) / 6
    assert m["novelty@3"] == pytest.approx(5 * L3 / 6)
    # Popularity (ARP): counts 1,1,0,0,3,0 -> 5/6
    assert m["popularity@3"] == pytest.approx(5 / 6)
    # ILD u0 [1,2,3]: (1,2) share b -> 1 - 1/3; u1 [3,0,4]: (3,4) c, (0,4) a -> 1 - 2/3
    assert m["diversity@3"] == pytest.approx(0.5)


def test_csr_input_and_category_matrix_give_the_same_numbers() -> None:
    rel = TEST.to_csr(binary=True)
    cat_m = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1],
                                    [1, 0, 0]]))
    a = evaluate_recs(RECS, TEST, k=3, train=TRAIN, item_categories=CATS)
    b = evaluate_recs(RECS, rel, k=3, train=TRAIN.to_csr(), item_categories=cat_m)
    assert a == pytest.approx(b)


def test_duplicates_in_a_list_count_once_and_padding_never_hits() -> None:
    # user 0 relevant {1, 3}; [1, 1, 3] has hits at ranks 1 and 3 only.
    pu = per_user_metrics(np.array([[1, 1, 3], [3, 0, 4], [0, 0, 0]]), TEST, k=3)
    assert pu["precision"][0] == pytest.approx(2 / 3)
    # Item 0 is relevant for user 1: padding -1 must not be read as item 0.
    pu = per_user_metrics(np.array([[-1, -1, -1], [-1, -1, -1], [0, 0, 0]]), TEST, k=3)
    assert pu["precision"].tolist() == [0.0, 0.0]
    assert pu["ndcg"].tolist() == [0.0, 0.0]


def test_short_lists_are_padded_and_users_select_rows() -> None:
    pu = per_user_metrics(np.array([[1], [0]]), TEST, k=3, users=np.array([0, 1]))
    np.testing.assert_allclose(pu["precision"], [1 / 3, 1 / 3])
    np.testing.assert_allclose(pu["recall"], [1 / 2, 1 / 4])


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="recs\\[0, 1\\] = 9"):
        per_user_metrics(np.array([[1, 9, 3], [0, 0, 0], [0, 0, 0]]), TEST, k=3)
    with pytest.raises(ValueError, match="rows"):
        per_user_metrics(np.zeros((2, 3), np.int64), TEST, k=3)
    with pytest.raises(ValueError, match="integer"):
        per_user_metrics(np.zeros((3, 3)), TEST, k=3)
    with pytest.raises(ValueError, match="item_categories"):
        evaluate_recs(RECS, TEST, k=3, item_categories=CATS[:2])


def _reference(recs: np.ndarray, rel: list[set[int]], k: int) -> dict[str, list[float]]:
    """Plain-Python definitions (the module docstring), one user at a time."""
    out: dict[str, list[float]] = {m: [] for m in ("precision", "recall", "ndcg", "map", "mrr")}
    for u, items in enumerate(rel):
        if not items:
            continue
        seen, hits = set(), []
        for x in recs[u, :k]:
            hits.append(int(x >= 0 and x in items and x not in seen))
            seen.add(int(x))
        dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
        idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(items))))
        ap = sum(h * sum(hits[:j + 1]) / (j + 1) for j, h in enumerate(hits))
        first = next((j for j, h in enumerate(hits) if h), None)
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(items))
        out["ndcg"].append(dcg / idcg)
        out["map"].append(ap / len(items))
        out["mrr"].append(0.0 if first is None else 1 / (first + 1))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 60, 25, 7
    n = 400
    test = Interactions.from_arrays(rng.integers(0, n_users, n), rng.integers(0, n_items, n),
                                    n_users=n_users, n_items=n_items)
    recs = rng.integers(-1, n_items, (n_users, 10))
    rel = [set() for _ in range(n_users)]
    for u, i in zip(test.user.tolist(), test.item.tolist()):
        rel[u].add(i)
    ref = _reference(recs, rel, k)
    pu = per_user_metrics(recs, test, k=k)
    for name, values in ref.items():
        np.testing.assert_allclose(pu[name], values, err_msg=name)


def test_perfect_and_reversed_rankings() -> None:
    rng = np.random.default_rng(5)
    n_users, n_items, k = 40, 50, 5
    rel = [rng.choice(n_items, size=rng.integers(k, 15), replace=False) for _ in range(n_users)]
    test = Interactions.from_arrays(np.repeat(np.arange(n_users), [len(r) for r in rel]),
                                    np.concatenate(rel), n_users=n_users, n_items=n_items)
    perfect = np.stack([r[:k] for r in rel])
    pu = per_user_metrics(perfect, test, k=k)
    np.testing.assert_allclose(pu["precision"], 1.0)
    np.testing.assert_allclose(pu["ndcg"], 1.0)
    np.testing.assert_allclose(pu["recall"], [k / len(r) for r in rel])
    # Two hits at the top vs the same two hits at the bottom: NDCG and MRR drop, precision not.
    misses = [np.setdiff1d(np.arange(n_items), r)[: k - 2] for r in rel]
    top = np.stack([np.r_[r[:2], m] for r, m in zip(rel, misses)])
    bottom = top[:, ::-1].copy()
    a, b = per_user_metrics(top, test, k=k), per_user_metrics(bottom, test, k=k)
    assert (a["ndcg"] > b["ndcg"]).all() and (a["mrr"] > b["mrr"]).all()
    np.testing.assert_allclose(a["precision"], b["precision"])


def test_gini_and_diversity_extremes() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(9), 5.0]) == pytest.approx(0.9)   # (n-1)/n for one nonzero
    assert math.isnan(gini(np.zeros(4)))
    cats = [["a"], ["a"], ["b"], ["c"]]
    ild = intra_list_diversity(np.array([[0, 1, -1], [0, 2, 3], [3, -1, -1]]), cats, n_items=4)
    assert ild[0] == pytest.approx(0.0) and ild[1] == pytest.approx(1.0) and math.isnan(ild[2])
    # More than 64 categories spill into a second bit word.
    many = [[f"c{i}"] for i in range(100)] + [["c99"]]
    ild = intra_list_diversity(np.array([[99, 100], [70, 100]]), many, n_items=101)
    assert ild.tolist() == [0.0, 1.0]

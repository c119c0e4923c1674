"""Batch work on Ray Data: two-tower item-tower scoring and batch-recommend's user scoring.

Both jobs ship the trained model through Ray's object store (``ray.put``: in-memory, never a
pickle file on disk) and map over partitions with one actor per worker, so the model is
deserialised once per worker, not once per partition. The driver reassembles the partitions in
their original order, so the results equal the local ones:

- ``ray_item_vectors(model, engine=...) -> (collab, content)`` float32 [n_items, dim]: the item
  tower over contiguous item-index ranges (``engine.cfg.partitions`` of them). The weights travel
  as a numpy state dict plus the per-item input arrays; each actor rebuilds the network with
  the model's own constructor. Same float32 arithmetic as ``item_vectors`` (per-row, eval mode),
  so the vectors are allclose (bit-equal in practice) to the local ones.
- ``ScoredTwoTower``: a ``TwoTowerRecommender`` whose ``_refresh_item_vectors`` (run at the end of
  ``load``) scores the items on Ray, then blends and builds the category centroids exactly as
  the base class does. Saved bundles are the ordinary two-tower format.
- ``ray_recommend_chunks(hook, chunks, k, ...)``: ``hook.recommend(chunk, k, ...)`` for every user
  chunk of ``batch-recommend``, on Ray, yielded in chunk order (same chunks as the local loop,
  hence the same numbers and the same output file).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from winnow.engine.ray_session import RaySession
from winnow.models.two_tower import TwoTowerRecommender

if TYPE_CHECKING:
    import torch

ITEM_BATCH = 8192  # rows per item-tower forward pass (as winnow.models.two_tower.train.item_vectors)


def ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most n) contiguous, near-equal [start, stop) ranges covering range(n)."""
    parts = max(1, min(int(parts), n))
    bounds = np.linspace(0, n, parts + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _tower_range(net: Any, table: dict[str, torch.Tensor], start: int, stop: int, *,
                 content_only: bool) -> np.ndarray:
    """float32 [stop - start, dim]: item-tower outputs of items start..stop-1 (global indices)."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(start, stop, ITEM_BATCH):
            idx = torch.arange(s, min(stop, s + ITEM_BATCH), dtype=torch.int64)
            ids = torch.zeros(len(idx), dtype=torch.int64) if content_only else idx + 1
            pop = torch.zeros(len(idx), dtype=torch.int64) if content_only else table["pop"][idx]
            out.append(net.item(ids, table["cats"][idx], table["creator"][idx], table["age"][idx], pop,
                                table["text"][idx]))
    return torch.cat(out).numpy().astype(np.float32)


class _ItemTowerActor:
    """Ray Data actor: {"start", "stop"} rows -> {"item" int64 [n], "collab"/"content" [n, dim]}."""

    def __init__(self, shared: list[Any]) -> None:
        import ray
        import torch

        from winnow.models.content import StructuredContent
        from winnow.models.two_tower.towers import ItemTable

        params, structure, n_items, state, arrays = ray.get(shared[0])
        torch.set_num_threads(1)
        shell = TwoTowerRecommender(**params)
        shell.structure_ = StructuredContent.from_json(structure)
        table = ItemTable(**arrays)
        self.net = shell.build_net(table, n_items)  # the model's own constructor: same shapes
        self.net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
        self.net.eval()
        self.table = table.tensors()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items, collab, content = [], [], []
        for a, b in zip(batch["start"].tolist(), batch["stop"].tolist(), strict=True):
            items.append(np.arange(a, b, dtype=np.int64))
            collab.append(_tower_range(self.net, self.table, a, b, content_only=False))
            content.append(_tower_range(self.net, self.table, a, b, content_only=True))
        return {"item": np.concatenate(items), "collab": np.vstack(collab), "content": np.vstack(content)}


def ray_item_vectors(model: TwoTowerRecommender, *, engine: RaySession,
                     partitions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(collab, content) float32 [n_items, dim] of a fitted/loaded two-tower, scored on Ray.

    ``model`` needs ``net_``, ``table_``, ``structure_``, ``n_items_`` (set by fit and load).
    Partitions: ``partitions`` (default ``engine.cfg.partitions``) contiguous item ranges."""
    import dataclasses

    import ray

    table = model.table_
    n = int(table.pop.shape[0])
    state = {k: v.detach().cpu().numpy() for k, v in model.net_.state_dict().items()}
    arrays = {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}
    shared = ray.put((model.get_params(), model.structure_.to_json(), int(model.n_items_), state, arrays))
    parts = ranges(n, partitions or engine.cfg.partitions)
    dim = int(model.net_.query_proj.out_features)
    collab = np.full((n, dim), np.nan, np.float32)
    content = np.full((n, dim), np.nan, np.float32)
    if not parts:
        return collab, content
    workers = min(engine.num_workers, len(parts))
    inputs = ray.data.from_items([{"start": a, "stop": b} for a, b in parts], override_num_blocks=len(parts))
    ds = inputs.map_batches(_ItemTowerActor, batch_size=1, batch_format="numpy",
                        fn_constructor_kwargs={"shared": [shared]},
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    seen = np.zeros(n, bool)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        collab[batch["item"]] = batch["collab"]
        content[batch["item"]] = batch["content"]
        seen[batch["item"]] = True
    if not seen.all():
        raise RuntimeError(f"ray item-tower job returned {int(seen.sum())} of {n} items")
    return collab, content


class ScoredTwoTower(TwoTowerRecommender):
    """``TwoTowerRecommender`` whose item vectors are scored on Ray (class attribute ``engine``;
    without one it is the base class). Use ``scored_two_tower(engine).load(directory)``."""

    engine: RaySession | None = None
    scoring_s: float = 0.0

    def _refresh_item_vectors(self) -> None:
        import time

        if self.engine is None:
            return super()._refresh_item_vectors()
        t0 = time.perf_counter()
        self.collab_vectors_, self.content_vectors_ = ray_item_vectors(self, engine=self.engine)
        self.scoring_s = time.perf_counter() - t0
        self._blend_item_vectors()  # blend + category centroids, as the local model does


def scored_two_tower(engine: RaySession) -> type[ScoredTwoTower]:
    """A ``ScoredTwoTower`` subclass bound to ``engine`` (``.load(d)`` scores items on Ray)."""
    return type("ScoredTwoTower", (ScoredTwoTower,), {"engine": engine})


# --- batch-recommend ---------------------------------------------------------------------------
class _ChunkActor:
    """Ray Data actor: {"chunk"} rows -> {"chunk", "pos", "recs" [n, k], "scores" [n, k]} per user."""

    def __init__(self, shared: list[Any]) -> None:
        import ray

        self.hook, self.chunks, self.k, self.exclude, self.candidates = ray.get(shared[0])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {"chunk": [], "pos": [], "recs": [], "scores": []}
        for c in batch["chunk"].tolist():
            users = self.chunks[int(c)]
            recs, scores = self.hook.recommend(users, self.k, exclude=self.exclude, candidates=self.candidates)
            out["chunk"].append(np.full(len(users), c, np.int64))
            out["pos"].append(np.arange(len(users), dtype=np.int64))
            out["recs"].append(np.asarray(recs))
            out["scores"].append(np.asarray(scores))  # dtype kept: the CSV formats it as local
        return {key: np.concatenate(v) for key, v in out.items()}


def ray_recommend_chunks(hook: Any, chunks: list[np.ndarray], k: int, *, exclude: sp.csr_matrix,
                         candidates: np.ndarray | None, engine: RaySession
                         ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(users, recs [n, k], scores [n, k]) per chunk, in chunk order, computed by
    ``hook.recommend(users, k, exclude=, candidates=)`` on ``engine.num_workers`` Ray actors."""
    import ray

    chunks = [np.asarray(c, np.int64) for c in chunks if len(c)]
    if not chunks:
        return
    shared = ray.put((hook, chunks, k, exclude, candidates))
    workers = min(engine.num_workers, len(chunks))
    inputs = ray.data.from_items([{"chunk": i} for i in range(len(chunks))],
                             override_num_blocks=min(len(chunks), max(workers * 4, 1)))
    ds = inputs.map_batches(_ChunkActor, batch_size=1, batch_format="numpy",
                        fn_constructor_kwargs={"shared": [shared]},
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    have = np.zeros(len(chunks), np.int64)
    nxt = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for c in np.unique(batch["chunk"]).tolist():  # a chunk's rows may span output blocks
            rows = np.flatnonzero(batch["chunk"] == c)
            parts.setdefault(int(c), []).append((batch["pos"][rows], batch["recs"][rows], batch["scores"][rows]))
            have[c] += len(rows)
        while nxt < len(chunks) and have[nxt] == len(chunks[nxt]):  # yield chunks in order
            pos, recs, scores = (np.concatenate(x) for x in zip(*parts.pop(nxt), strict=True))
            order = np.argsort(pos)
            yield chunks[nxt], recs[order], scores[order]
            nxt += 1
    if nxt != len(chunks):
        raise RuntimeError(f"ray batch-recommend job returned {nxt} of {len(chunks)} user chunks in order")

"""`winnow batch-recommend` on the served funnel (the default): the service's Pipeline for every user.

The contract of training/batch.py holds (fit on the events given and nothing else; users from
--users or everyone in the events, cold users included; a user's training items never
recommended; --candidates restricts the choice; the same CSV: user_id,item_id,rank,score, rank
1 = best, warm users first then cold users, each in the dataset's index order), with what
answers each user being the service's own funnel: `winnow train`'s bundle fitted on the events
in a scratch home (winnow.offline.served) and ``Pipeline.recommend_many`` over the users with
exploration off (winnow.serving.batch). So a user gets what `winnow serve` would answer them
one second after the last event, minus their training items; cold users and items are served
by the pipeline's cold-start sources and fallback chain as the service serves them (not by
training/batch.py's ``ColdStartHook``, which stays with ``--model NAME``). A slate may hold
fewer than k items when the pipeline's candidates hold fewer allowed items (with --candidates).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError
from winnow.data.importers import Imported
from winnow.data.interactions import Dataset
from winnow.offline.served import fit_served
from winnow.serving.batch import UserList
from winnow.training.batch import BatchSummary, batch_users, write_recs_csv

PIPELINE = "pipeline"  # BatchSummary.model of this path


def default_workers(n_users: int) -> int:
    """Processes for ``n_users``: one. A second process did not pay for its start-up (spawn,
    imports, the bundle load with the ranker's feature-state replay) in any run measured here
    (bench/batch_throughput.py: 943 and 10,000 users, on a 2-core machine under other load), so
    more processes are opt-in (``--workers``) until a quiet-machine run shows they help."""
    del n_users  # the rule may depend on the batch size once measured; today it does not
    return 1


def served_batch_recommend(imported: Imported, dataset: Dataset, config: WinnowConfig, *, k: int, out: Path,
                           users: list[str] | None = None, candidates: list[str] | None = None,
                           workers: int | None = None,
                           progress: Callable[[str], None] | None = None) -> BatchSummary:
    """Fit the served funnel on ``imported`` (``dataset``: the same frames, for user order and
    training items) and write every user's top-k to ``out`` (atomically).
    ``workers``: processes (default ``default_workers``); the file is the same for any number."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    warm, cold = batch_users(dataset, users)
    order = [int(u) for u in warm] + [int(u) for u in cold]
    user_ext = [str(x) for x in dataset.user_ids.decode(order)]
    csr = dataset.interactions.to_csr(binary=True)
    exclude = [[str(x) for x in dataset.item_ids.decode(csr[u].indices)] for u in order]
    with tempfile.TemporaryDirectory(prefix="winnow-batch-") as home:
        served = fit_served(imported, config, Path(home), progress=progress)
        lists = served.recommend(user_ext, k=k, exclude=exclude, allowed=candidates,
                                 workers=default_workers(len(order)) if workers is None else workers)
    rows = write_recs_csv(out, _rows(lists))
    return BatchSummary(users=len(order), cold_users=len(cold), rows=rows, model=PIPELINE)


def _rows(lists: list[UserList]) -> Iterator[tuple[str, str, int, float]]:
    for answer in lists:
        for rank, (item, score) in enumerate(zip(answer.items, answer.scores, strict=True), start=1):
            yield answer.user_id, item, rank, score

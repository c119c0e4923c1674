"""The learned ranker in the service, training side: fitted on the bundle's data and written
into the bundle's ``ranker/`` (winnow.bundle.layout: ``ranker.txt`` LightGBM text model,
``ranker.json`` feature spec, ``features.npz`` FeatureCatalog arrays). The service loads it with
live feature state (winnow.serving.learned_ranker).

Training lists (``[ranker] train_on``): once the store's impression log holds enough labelled
slates (``logged_lists``), the ranker learns from them -- shown items labelled by what the user
did next, source scores as the service logged them, other features point-in-time as of each
slate (features/impression_lists.py) -- so training sees what serving sees; each row keeps the
position it was shown at, for the ``[ranker] position_bias`` correction (winnow.models.position_bias:
its examination curve goes into ranker.json and the manifest's ``ranker.position_bias``). Before that, lists
come from history (as of each user's last event, sources scored by the retrieval models rather
than through the ANN index and recent items): the known skew of that cold-start path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from winnow.bundle import save_ranker
from winnow.core.config import WinnowConfig
from winnow.data.interactions import Dataset
from winnow.features import FeatureCatalog, offline_features
from winnow.features.offline import OfflineFeatures
from winnow.models.ranker import LambdaRanker
from winnow.training.stacked import (
    StackedRanker,
    InsufficientRankerData,
    served_ranker_config,
)
from winnow.features.impression_lists import ImpressionLists, impression_lists


def logged_lists(config: WinnowConfig, ds: Dataset, store: Any, *,
                 until: int | None = None) -> tuple[ImpressionLists | None, dict[str, Any]]:
    """The impression log's labelled slates for the served ranker, per ``[ranker] train_on``:
    (lists, info) or (None, info saying why history is used). Reads the last
    ``impression_days`` before the training data's newest event; clicks per ``[feedback]``
    (types, attribution window), purchases per ``[ranker] purchase_events``. ``until``: only
    impressions and events with timestamp < until (the training data's time cut)."""
    rc, fb = config.ranker, config.feedback
    if rc.train_on == "history" or store is None:
        return None, {"training_data": "history", "why": "train_on = history" if store else "no store"}
    newest = int(ds.interactions.timestamp.max()) if len(ds.interactions) else int(time.time())
    since = newest - int(rc.impression_days * 86400)
    imps = store.read_impressions(since=since)
    types = sorted(set(fb.click_events) | set(rc.purchase_events))
    events = store.read_feedback_events(event_types=types, since=since)
    if until is not None:
        imps = [imp for imp in imps if int(imp["timestamp"]) < until]
        events = events[events["timestamp"] < until]
    lists = impression_lists(imps, events, user_ids=ds.user_ids, item_ids=ds.item_ids,
                             click_types=fb.click_events, purchase_types=rc.purchase_events,
                             window_s=fb.attribution_window_s).shuffled(rc.seed)
    info = {"slates_read": lists.slates, "shown_read": lists.shown, "labelled_slates": len(lists)}
    if len(lists) >= rc.min_impression_lists:
        return lists, {"training_data": "impressions", **info}
    why = f"{len(lists)} labelled slates in the log, fewer than min_impression_lists = {rc.min_impression_lists}"
    if rc.train_on == "impressions":
        raise InsufficientRankerData(why)
    return None, {"training_data": "history", "why": why, **info}


def fit_served_ranker(config: WinnowConfig, ds: Dataset, *, features: OfflineFeatures = offline_features,
                      store: Any = None, models: dict[str, Any] | None = None,
                      progress: Any = None, until: int | None = None) -> tuple[StackedRanker | None, dict[str, Any]]:
    """Fit the service's ranker on all of ``ds``; (None, reason) when there is too little data
    or no pipeline source is backed by a retrieval model. ``features`` computes the lists'
    point-in-time features (the training engine's ``offline_features``, e.g. on Ray Data). With a
    ``store``, its impression log may supply the training lists (``logged_lists``).
    ``models``: registry name -> a model already fitted on ``ds.interactions`` (the bundle's);
    the funnel reuses them instead of fitting its sources on all events again. ``progress``:
    a callable taking one message string. ``until``: the impression log is read below this
    time only (``logged_lists``)."""
    cfg, mapping = served_ranker_config(config)
    if not mapping:
        return None, {"skipped": "no pipeline source is backed by a retrieval model"}
    fitted = {src: models[reg] for src, reg in mapping.items() if models and reg in models}
    try:
        logged, log_info = logged_lists(config, ds, store, until=until)
        funnel = StackedRanker(ds, cfg, source_models=mapping, features=features).fit(
            ds.interactions, impressions=logged, fitted=fitted, progress=progress)
    except InsufficientRankerData as exc:
        return None, {"skipped": str(exc)}
    report = {k: v for k, v in funnel.report_.items() if k != "importance"}
    return funnel, {**report, "impression_log": log_info, "sources": mapping,
                    "top_features": funnel.report_["importance"][:10]}


def served_ranker_parts(funnel: StackedRanker) -> tuple[LambdaRanker, FeatureCatalog]:
    """What the bundle stores of a fitted served ranker (winnow.bundle.BundleContents.ranker)."""
    assert funnel.ranker_ is not None and funnel.catalog_ is not None
    return funnel.ranker_, funnel.catalog_


def save_served_ranker(funnel: StackedRanker, bundle_dir: Path) -> None:
    """Write a fitted served ranker into ``bundle_dir``'s ranker/ (winnow.bundle.save_ranker)."""
    save_ranker(*served_ranker_parts(funnel), bundle_dir)

"""The component contract: one candidate-source kind, from training to the request path.

A component (registered in winnow.core.registry.COMPONENTS under its ``kind``) declares:

- ``kind``: the ``[[pipeline.sources]] kind`` it serves;
- ``artefact``: the name of what it fits into the bundle (components sharing an artefact --
  ``two_tower`` and ``content`` -- fit and load it once), or None when it needs nothing fitted;
- ``section``: the ``[models.<section>]`` config section that parameterises it (None: none);
- ``model``: the retrieval model (winnow.models.registry) behind its candidates, which the
  served ranker's offline training lists use to score this source (None: not model-backed);
- ``needs_profile``: requests need the user's stored profile (attributes, declared interests);
- ``always``: fitted into every bundle, configured or not (the catalog's popularity/trending
  arrays, the ALS index and item-item neighbours every bundle carries);
- ``backfill``: it can top up any slate from the catalog alone (a valid ``backfill_source`` kind);
- ``stage``: the training stage it is timed under in the manifest's ``stages``;
- ``warm_capable``: its fit can continue from the previous bundle's artefact (see below).

and implements ``fit`` (training data -> artefact), ``save`` (artefact -> BundleContents),
``load`` (loaded bundle -> what its source needs) and ``source`` (-> a CandidateSource).

Warm starts: ``FitContext.warm`` is the previous bundle (winnow.bundle.warm.WarmSource) when
the run continues from one, else None with ``warm_off`` saying why. A component that can
continue from its previous artefact (``warm_capable``: ALS, the two-tower) reads it in ``fit``
and records {"mode": "warm" | "cold", ...} in ``ctx.warm_reports[artefact]``
(winnow.components.warm), which the manifest keeps under ``warm_start``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from winnow.bundle import Bundle, BundleContents
from winnow.core.config import WinnowConfig
from winnow.data.interactions import Dataset, Interactions
from winnow.data.store import Store
from winnow.pipeline.sources import CandidateSource
from winnow.pipeline.types import Catalog

if TYPE_CHECKING:  # torch is imported only by a run that fits or serves a two-tower
    from winnow.bundle.warm import WarmSource
    from winnow.models.two_tower import TwoTowerRecommender


class TrainingEngine(Protocol):
    """The part of winnow.engine's engines a component's fit may use."""

    def fit_two_tower(self, model: TwoTowerRecommender,
                      train: Interactions) -> tuple[TwoTowerRecommender, dict[str, Any]]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class FitContext:
    """What ``Component.fit`` gets: the config, the training dataset (all events), the engine,
    ``reports`` (artefact -> a report the manifest records under "engine"), the previous
    bundle to continue from (``warm``; None: cold, ``warm_off`` says why) and ``warm_reports``
    (artefact -> its warm/cold record, the manifest's ``warm_start.components``)."""

    config: WinnowConfig
    dataset: Dataset
    engine: TrainingEngine | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    warm: WarmSource | None = None
    warm_off: str = "warm start off"
    warm_reports: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ServeContext:
    """What ``Component.load`` / ``Component.source`` get for one runtime.

    ``artefacts``: artefact name -> what ``load`` returned (filled by build_sources; tests may
    pass artefacts directly, with ``bundle`` None); ``recent``: the ``[pipeline] recent_items``
    of the pipeline being built (build_sources sets it per pipeline, e.g. an A/B variant's)."""

    catalog: Catalog
    config: WinnowConfig | None = None
    bundle: Bundle | None = None
    store: Store | None = None
    artefacts: dict[str, Any] = field(default_factory=dict)
    recent: int = 50

    @property
    def ef_search(self) -> int | None:
        return self.config.index.ef_search if self.config is not None else None


class Component(ABC):
    """One candidate-source kind (see the module docstring). Stateless: one instance per kind."""

    kind: ClassVar[str]
    artefact: ClassVar[str | None] = None
    section: ClassVar[str | None] = None
    model: ClassVar[str | None] = None
    needs_profile: ClassVar[bool] = False
    always: ClassVar[bool] = False
    backfill: ClassVar[bool] = False
    stage: ClassVar[str] = "fit"
    warm_capable: ClassVar[bool] = False

    def fit(self, ctx: FitContext) -> Any:
        """The fitted artefact; default: the registry model ``model`` built from its config
        section and fitted on every training event."""
        from winnow.models.registry import build_model

        assert self.model is not None, f"component {self.kind!r} fits nothing"
        return build_model(self.model, ctx.config).fit(ctx.dataset.interactions)

    def save(self, artefact: Any, contents: BundleContents) -> None:
        """Put the fitted artefact into the bundle; default: a model under models/<artefact>/."""
        assert self.artefact is not None
        contents.models[self.artefact] = artefact

    def load(self, ctx: ServeContext) -> Any:
        """What ``source`` needs, from ``ctx.bundle``; default: the bundle's model named
        ``artefact`` (None when the bundle has none)."""
        if ctx.bundle is None or self.artefact is None:
            return None
        return ctx.bundle.models.get(self.artefact)

    @abstractmethod
    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        """The candidate source named ``name``; ConfigError when ``artefact`` (what ``load``
        returned) is missing and the source cannot work without it."""

    def missing(self, name: str, what: str) -> str:
        """The ConfigError message for a source whose bundle lacks ``what``."""
        return f"source {name!r} (kind {self.kind}) needs {what} in the bundle"


"""winnow.components: every candidate-source kind as one component (fit -> bundle -> source).

The kinds are listed once, in winnow.core.registry.COMPONENTS; ``base.Component`` is the
contract; ``registry`` turns a config into components, sources and a Pipeline.
"""

from winnow.components.base import Component, FitContext, ServeContext
from winnow.components.registry import (
    build_pipeline,
    build_source,
    build_sources,
    component,
    components_for,
    needs_profile,
    ranker_models,
)

__all__ = ["Component", "FitContext", "ServeContext", "build_pipeline", "build_source", "build_sources",
           "component", "components_for", "needs_profile", "ranker_models"]

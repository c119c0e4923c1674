"""winnow.pipeline: retrieve (named sources + fallback chain) -> rank -> re-rank, per request.

The Pipeline is wired from a config by winnow.components.build_pipeline (one component per
source kind)."""

from winnow.pipeline.pipeline import Pipeline
from winnow.pipeline.rank import BlendRanker, candidate_features
from winnow.pipeline.rules import build_rules
from winnow.pipeline.types import Catalog, Ranker, Request, Rule, Slate, UserView

__all__ = ["BlendRanker", "Catalog", "Pipeline", "Ranker", "Request", "Rule", "Slate",
           "UserView", "build_rules", "candidate_features"]

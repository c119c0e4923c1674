"""winnow.pipeline: retrieve (named sources + fallback chain) -> rank -> re-rank, per request."""

from winnow.pipeline.pipeline import Pipeline, build_pipeline
from winnow.pipeline.rank import BlendRanker, candidate_features
from winnow.pipeline.rules import build_rules
from winnow.pipeline.sources import RetrievalArtefacts, build_source
from winnow.pipeline.types import Catalog, Ranker, Request, Rule, Slate, UserView

__all__ = ["BlendRanker", "Catalog", "Pipeline", "Ranker", "Request", "RetrievalArtefacts", "Rule", "Slate",
           "UserView", "build_pipeline", "build_rules", "build_source", "candidate_features"]

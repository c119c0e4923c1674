"""Ranking features: one definition (definitions.finalize), computed offline as of each
example's time (offline.offline_features) and online from live state (online.OnlineFeatureState)."""

from winnow.features.catalog import FeatureCatalog, fit_spec
from winnow.features.offline import Lists, offline_features
from winnow.features.online import OnlineFeatureState
from winnow.features.spec import FeatureSpec

__all__ = ["FeatureCatalog", "FeatureSpec", "Lists", "OnlineFeatureState", "fit_spec",
           "offline_features"]

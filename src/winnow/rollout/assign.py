"""Sticky arm assignment of a canary: the same machinery as ``[[experiments]]``.

A rollout is an experiment named ``rollout-<id>`` with the rollout's own salt and two variants,
``champion`` then ``challenger``; ``ExperimentConfig.variant_of`` gives each user the variant
owning their sha256 bucket in [0, 1). The challenger owns the top ``share`` of [0, 1), so as the
plan's share grows, a user once in the challenger arm stays there (only champion users move),
every worker and replica computes the same arm from the record alone, and a restart changes
nothing. Impressions log the arm under ``context.experiments["rollout-<id>"]``, so
``winnow ab report rollout-<id>`` reads it like any experiment.
"""

from __future__ import annotations

from functools import lru_cache

from winnow.core.config import ExperimentConfig, VariantConfig
from winnow.data.rollouts import Rollout

CHAMPION, CHALLENGER = "champion", "challenger"


def experiment_name(rollout_id: int) -> str:
    return f"rollout-{rollout_id}"


@lru_cache(maxsize=64)
def _experiment(name: str, salt: str, share: float) -> ExperimentConfig:
    return ExperimentConfig(name=name, salt=salt, control=CHAMPION,
                            variants=[VariantConfig(name=CHAMPION, traffic=1.0 - share),
                                      VariantConfig(name=CHALLENGER, traffic=share)])


def experiment(r: Rollout, share: float | None = None) -> ExperimentConfig:
    """The rollout as an ExperimentConfig at ``share`` (default: its current share)."""
    return _experiment(experiment_name(r.id), str(r.params.get("salt", "")), r.share if share is None else share)


def arm_of(r: Rollout, user_id: str) -> str:
    """``champion`` or ``challenger`` for ``user_id`` under the rollout's current share."""
    share = r.share
    if share <= 0.0:
        return CHAMPION
    if share >= 1.0:
        return CHALLENGER
    return experiment(r, share).variant_of(user_id)

"""Early stopping of a two-tower training run, shared by both objectives (train.py, masked.py).

After every epoch ``after_epoch`` calls the run's validation callback (NDCG@10 of the validation
users), keeps a copy of the weights of the best epoch so far (an improvement is > 1e-5), and
says to stop once ``patience`` epochs in a row did not improve on it; ``finish`` loads the best
weights back. Without a callback every epoch is "best" (the run trains all its epochs and keeps
the last). The time spent validating is counted apart (``seconds``), so a report shows what the
validation pass costs next to the epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


class EarlyStop:
    """Best-epoch tracking and the stop rule (see module docstring)."""

    def __init__(self, validate: Callable[[], float] | None, patience: int) -> None:
        self.validate, self.patience = validate, patience
        self.scores: list[float] = []
        self.best, self.best_epoch, self.bad, self.seconds = -1.0, -1, 0, 0.0
        self._state: dict[str, torch.Tensor] | None = None

    def after_epoch(self, net: nn.Module, epoch: int) -> bool:
        """Record epoch ``epoch`` (0-based); True when the run should stop now."""
        if self.validate is None:
            self.best_epoch = epoch
            return False
        net.eval()
        t0 = time.perf_counter()
        score = float(self.validate())
        self.seconds += time.perf_counter() - t0
        self.scores.append(score)
        if score > self.best + 1e-5:
            self.best, self.best_epoch, self.bad = score, epoch, 0
            self._state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            self.bad += 1
        return self.bad >= self.patience

    def finish(self, net: nn.Module) -> None:
        """Load the best epoch's weights (no-op without a validation callback)."""
        if self._state is not None:
            net.load_state_dict(self._state)

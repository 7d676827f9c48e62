"""Optimizer wrappers shared by methods whose update is more than one batch's ``step``.

The trainer calls ``zero_grad`` / ``backward`` / ``step`` once per batch. A method that
accumulates gradients over several batches (the cross-modal attention framework, LipSync graph
ERC) returns an :class:`AccumulatingOptimizer` from ``configure_optimizer``: the trainer's loop
is unchanged, and one real update happens every ``steps`` batches. The method's scheduler
object (stepped by the trainer once per epoch) must call :meth:`AccumulatingOptimizer.flush`
first, so that the batches left at the end of an epoch are applied, never dropped.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


class AccumulatingOptimizer:
    """Wraps an optimizer: the gradients of ``steps`` batches are summed, divided by their number
    (the mean of the batch means), clipped to ``clip`` (> 0) as a whole, and applied in one
    ``inner.step()``; then every ``after_update`` callback runs (a per-update LR schedule, an EMA
    of the weights). ``updates`` counts real updates.

    Clipping belongs here, not in the trainer: the trainer clips per batch, which with
    accumulation would clip only a part of the gradient.
    """

    def __init__(self, inner: torch.optim.Optimizer, steps: int = 1, clip: float = 0.0,
                 params: Iterable[nn.Parameter] | None = None,
                 after_update: Iterable[Callable[[], None]] = ()):
        if int(steps) < 1:
            raise ValueError(f"accumulation steps must be >= 1, not {steps}")
        self.inner, self.steps, self.clip = inner, int(steps), float(clip)
        self.params = list(params) if params is not None else [p for g in inner.param_groups for p in g["params"]]
        self.after_update = list(after_update)
        self.pending = 0
        self.updates = 0

    @property
    def param_groups(self):
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.pending == 0:
            self.inner.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.pending += 1
        if self.pending >= self.steps:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Apply the pending gradients now (no-op when none are pending)."""
        if not self.pending:
            return
        if self.pending > 1:
            for p in self.params:
                if p.grad is not None:
                    p.grad.div_(self.pending)  # sum of batch means -> mean over the batches
        if self.clip > 0:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.inner.step()
        for hook in self.after_update:
            hook()
        self.inner.zero_grad(set_to_none=True)
        self.pending = 0
        self.updates += 1

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

"""The engine's accumulating optimizer: one update per k batches, the mean gradient, clipping of
the whole accumulated gradient, per-update hooks, and nothing lost at a flush."""

from __future__ import annotations

import pytest
import torch

from merbench.optim import AccumulatingOptimizer


def _grad_step(opt, w, x):
    opt.zero_grad()
    (w * x).sum().backward()  # gradient = x
    opt.step()


def test_clip_applies_to_the_mean_of_the_accumulated_gradients_and_hooks_run_per_update():
    w = torch.nn.Parameter(torch.zeros(2))
    calls = []
    opt = AccumulatingOptimizer(torch.optim.SGD([w], lr=1.0), steps=2, clip=1.0, after_update=[lambda: calls.append(1)])
    _grad_step(opt, w, torch.tensor([3.0, 0.0]))
    assert torch.equal(w.detach(), torch.zeros(2)) and opt.updates == 0 and calls == []
    _grad_step(opt, w, torch.tensor([5.0, 0.0]))
    # mean gradient (4, 0), clipped to norm 1 -> (1, 0); SGD lr 1 -> w = (-1, 0)
    torch.testing.assert_close(w.detach(), torch.tensor([-1.0, 0.0]))
    assert opt.updates == 1 and calls == [1]


def test_flush_applies_a_partial_accumulation_once():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = AccumulatingOptimizer(torch.optim.SGD([w], lr=1.0), steps=3)
    _grad_step(opt, w, torch.tensor([2.0]))
    opt.flush()
    torch.testing.assert_close(w.detach(), torch.tensor([-2.0]))
    opt.flush()  # nothing pending: no second update
    torch.testing.assert_close(w.detach(), torch.tensor([-2.0]))
    assert opt.updates == 1


def test_steps_below_one_are_refused():
    with pytest.raises(ValueError, match=">= 1"):
        AccumulatingOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), steps=0)

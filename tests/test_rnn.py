"""merbench.rnn.masked_lstm gives what packing gives (outputs and gradients), without packing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from merbench import rnn  # noqa: E402


def _batch(B=6, T=11, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    lengths = torch.tensor([T, 1, 4, 7, 0, 9][:B])  # a full row, a one-step row, an empty row
    return x, torch.arange(T)[None] < lengths[:, None]


@pytest.mark.parametrize("bidirectional,layers,bias", [(True, 2, True), (False, 1, True), (True, 1, False),
                                                       (False, 3, True)])
def test_masked_lstm_equals_packing(bidirectional, layers, bias):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, layers, batch_first=True, bidirectional=bidirectional, bias=bias)
    x, mask = _batch()
    grads = []
    outs = []
    for fn in (rnn.packed_lstm, rnn.masked_lstm):
        xx = x.clone().requires_grad_()
        lstm.zero_grad()
        out = fn(lstm, xx, mask)
        (out.pow(2).sum() + out[:, 0].sum()).backward()
        outs.append(out.detach())
        grads.append([xx.grad.clone()] + [p.grad.clone() for p in lstm.parameters()])
    assert outs[0].shape == outs[1].shape == (6, 11, 7 * (2 if bidirectional else 1))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    real = mask.clone()
    real[4, 0] = True  # the empty row runs over its first step, as packing with length 1
    assert (outs[1][~real] == 0).all()


def test_outputs_do_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, 2, batch_first=True, bidirectional=True)
    x, mask = _batch()
    full = rnn.masked_lstm(lstm, x, mask)
    # The same row with less padding after it, alone in its batch.
    alone = rnn.masked_lstm(lstm, x[2:3, :4], mask[2:3, :4])
    torch.testing.assert_close(alone[0], full[2, :4], rtol=1e-5, atol=1e-6)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, 2, batch_first=True, bidirectional=True, dropout=0.5)
    x, mask = _batch()
    lstm.eval()
    torch.testing.assert_close(rnn.masked_lstm(lstm, x, mask), rnn.packed_lstm(lstm, x, mask), rtol=1e-5, atol=1e-6)
    lstm.train()
    a, b = rnn.masked_lstm(lstm, x, mask), rnn.masked_lstm(lstm, x, mask)
    assert not torch.allclose(a, b)  # dropout is drawn


def test_reverse_within_length_is_an_involution():
    x = torch.arange(12.0).view(2, 6)
    lengths = torch.tensor([4, 6])
    r = rnn.reverse_within_length(x, lengths)
    assert r.tolist() == [[3, 2, 1, 0, 4, 5], [11, 10, 9, 8, 7, 6]]
    assert torch.equal(rnn.reverse_within_length(r, lengths), x)


def test_the_packed_reference_can_be_selected(monkeypatch):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, 1, batch_first=True, bidirectional=True)
    x, mask = _batch()
    called = []
    monkeypatch.setattr(rnn, "IMPLEMENTATION", "packed")
    real = rnn.packed_lstm
    monkeypatch.setattr(rnn, "packed_lstm", lambda *a: called.append(1) or real(*a))
    rnn.masked_lstm(lstm, x, mask)
    assert called == [1]

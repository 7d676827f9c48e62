"""Utterance graphs inside a dialogue, and the unimodal graph encoders (text teacher,
audio and visual students) of the LipSync graph ERC paper.

Graphs (our version): one graph per dialogue, nodes = its utterances in turn order. A node
receives messages from

- its ``k`` most cosine-similar utterances of the same dialogue (k capped at the dialogue's
  size minus one),
- its temporal neighbours (``|i - j| <= window``),
- the utterances of the same speaker (within ``speaker_window`` turns; 0 = the whole dialogue).

Edge weight = cosine similarity + ``temporal_weight`` on temporal edges + ``speaker_weight`` on
speaker edges (the original adds ``temporal_weight`` to kNN edges between neighbours). A batch
is the disjoint union of its dialogues' graphs, so no message ever crosses a dialogue: a
prediction does not depend on which other dialogues share the batch. (The original builds one
kNN graph over a shuffled mini-batch of 16 utterances from any dialogues, with "temporal"
edges between batch neighbours.)

Encoders, as in the original (``TextGraphEncoder`` / ``AudioGraphEncoder`` / ``VisualGraphEncoder``):
input feature dropout (training only), BatchNorm1d, then conv layers, each
``LayerNorm(dropout(relu(conv(x))) + residual(x))``, and a linear head on the last state.
GATConv ignores edge weights (as in the original, where the weight goes into GATConv's
``edge_attr`` slot without an edge dimension); GraphConv uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GraphConv


@dataclass(frozen=True)
class EdgeConfig:
    k: int = 8  # cosine nearest neighbours per node
    window: int = 1  # temporal edges to turns at distance <= window (0: none)
    temporal_weight: float = 1.0
    speaker_edges: bool = True
    speaker_window: int = 0  # 0: every same-speaker turn of the dialogue
    speaker_weight: float = 1.0


def dialogue_graph(x: torch.Tensor, utt_mask: torch.Tensor, speaker: torch.Tensor | None,
                   cfg: EdgeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of the disjoint union of the dialogues' graphs.

    ``x`` (B, U, D): node features used for the kNN similarity; ``utt_mask`` (B, U) True on real
    turns; ``speaker`` (B, U) speaker index within the dialogue (or None: no speaker edges).
    Nodes are numbered over the real turns in (dialogue, turn) order, i.e. the order of
    ``x[utt_mask]``. Returns ``edge_index`` (2, E) as (source, target) and ``edge_weight`` (E,).
    """
    B, U = utt_mask.shape
    dev = x.device
    pair = utt_mask[:, :, None] & utt_mask[:, None, :]
    pair &= ~torch.eye(U, dtype=torch.bool, device=dev)
    xn = F.normalize(x.detach().float(), dim=-1, eps=1e-8)
    sim = xn @ xn.transpose(1, 2)  # (B, U, U); row i = target, column j = source
    adj = torch.zeros(B, U, U, dtype=torch.bool, device=dev)
    if cfg.k > 0 and U > 1:
        kk = min(cfg.k, U - 1)
        idx = sim.masked_fill(~pair, float("-inf")).topk(kk, dim=-1).indices
        knn = torch.zeros_like(adj).scatter_(-1, idx, True)
        adj |= knn & pair  # in a short dialogue the -inf picks (padding, self) drop out: k is capped
    pos = torch.arange(U, device=dev)
    dist = (pos[:, None] - pos[None, :]).abs()
    temporal = (dist <= cfg.window)[None] & pair if cfg.window > 0 else torch.zeros_like(adj)
    adj |= temporal
    same = torch.zeros_like(adj)
    if cfg.speaker_edges and speaker is not None:
        same = (speaker[:, :, None] == speaker[:, None, :]) & pair
        if cfg.speaker_window > 0:
            same &= (dist <= cfg.speaker_window)[None]
        adj |= same
    weight = sim + cfg.temporal_weight * temporal.float() + cfg.speaker_weight * same.float()
    node_id = torch.cumsum(utt_mask.reshape(-1).long(), 0).reshape(B, U) - 1
    b, i, j = adj.nonzero(as_tuple=True)
    edge_index = torch.stack([node_id[b, j], node_id[b, i]])
    return edge_index, weight[b, i, j]


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # "gat" or "graph"
    out: int  # per head
    heads: int = 1
    concat: bool = True
    # A Linear residual even when the sizes match (the original's first layers and visual layer 2).
    linear_residual: bool = False

    def width(self) -> int:
        return self.out * self.heads if (self.kind == "gat" and self.concat) else self.out


def text_layers(hidden: int = 192, heads: int = 4) -> list[LayerSpec]:
    """Text teacher: 4 GATConv layers (two concatenating heads, two averaging)."""
    return [LayerSpec("gat", hidden, heads, True, linear_residual=True), LayerSpec("gat", hidden, heads, True),
            LayerSpec("gat", hidden, heads, False), LayerSpec("gat", hidden, heads, False)]


def audio_layers(hidden: int = 256) -> list[LayerSpec]:
    """Audio student: 3 GraphConv layers."""
    return [LayerSpec("graph", hidden, linear_residual=True), LayerSpec("graph", hidden), LayerSpec("graph", hidden)]


def visual_layers() -> list[LayerSpec]:
    """Visual student: 3 GATConv layers, 128x4 -> 256x2 -> 256 (mean of 1 head)."""
    return [LayerSpec("gat", 128, 4, True, linear_residual=True), LayerSpec("gat", 256, 2, True, linear_residual=True),
            LayerSpec("gat", 256, 1, False, linear_residual=True)]


class GraphEncoder(nn.Module):
    """One modality's graph encoder over the dialogues of a batch: node states and logits."""

    def __init__(self, in_dim: int, num_classes: int, layers: Sequence[LayerSpec], edges: EdgeConfig,
                 dropout: float = 0.15, input_dropout: float = 0.1):
        super().__init__()
        self.edges = edges
        self.input_dropout = float(input_dropout)
        self.bn = nn.BatchNorm1d(in_dim)
        self.convs, self.res, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.kinds = []
        d = in_dim
        for spec in layers:
            w = spec.width()
            if spec.kind == "gat":
                self.convs.append(GATConv(d, spec.out, heads=spec.heads, concat=spec.concat))
            elif spec.kind == "graph":
                self.convs.append(GraphConv(d, spec.out))
            else:
                raise ValueError(f"unknown graph layer kind {spec.kind!r}")
            self.kinds.append(spec.kind)
            self.res.append(nn.Linear(d, w) if (d != w or spec.linear_residual) else nn.Identity())
            self.norms.append(nn.LayerNorm(w, eps=1e-5))
            d = w
        self.out_dim = d
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor, utt_mask: torch.Tensor, speaker: torch.Tensor | None = None):
        """``x`` (B, U, D) -> node states (B, U, out_dim) and logits (B, U, C); zeros on padding."""
        B, U, _ = x.shape
        h = x[utt_mask]  # (N, D): real turns only, so BatchNorm never sees padding
        if self.training and self.input_dropout > 0:
            h = h * (torch.rand_like(h) > self.input_dropout).float()
        if self.training and h.shape[0] < 2:
            # One utterance in the whole batch (a 1-turn dialogue left over at the end of an
            # epoch): batch statistics do not exist, use the running ones.
            h = F.batch_norm(h, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                             training=False, eps=self.bn.eps)
        else:
            h = self.bn(h)
        dense = h.new_zeros(B, U, h.shape[-1])
        dense[utt_mask] = h
        edge_index, edge_weight = dialogue_graph(dense, utt_mask, speaker, self.edges)
        for conv, res, norm, kind in zip(self.convs, self.res, self.norms, self.kinds):
            r = res(h)
            out = conv(h, edge_index, edge_weight) if kind == "graph" else conv(h, edge_index)
            h = norm(self.dropout(F.relu(out)) + r)
        logits = self.fc(self.dropout(h))
        states = h.new_zeros(B, U, h.shape[-1])
        states[utt_mask] = h
        dense_logits = logits.new_zeros(B, U, logits.shape[-1])
        dense_logits[utt_mask] = logits
        return states, dense_logits


def build_graph_encoder(modality: str, in_dim: int, num_classes: int, cfg: dict) -> GraphEncoder:
    """The encoder of ``modality`` from the ``model.graph`` config block (shared edge settings
    plus a per-modality block ``t`` / ``a`` / ``v``)."""
    own = dict(cfg.get(modality) or {})
    edges = EdgeConfig(k=int(own.get("k", 8)), window=int(cfg.get("window", 1)),
                       temporal_weight=float(own.get("temporal_weight", 1.0)),
                       speaker_edges=bool(cfg.get("speaker_edges", True)),
                       speaker_window=int(cfg.get("speaker_window", 0)),
                       speaker_weight=float(cfg.get("speaker_weight", 1.0)))
    if modality == "t":
        layers = text_layers(int(own.get("hidden", 192)), int(own.get("heads", 4)))
    elif modality == "a":
        layers = audio_layers(int(own.get("hidden", 256)))
    else:
        layers = visual_layers()
    return GraphEncoder(in_dim, num_classes, layers, edges, dropout=float(own.get("dropout", 0.15)),
                        input_dropout=float(own.get("input_dropout", 0.1 if modality == "t" else 0.05)))

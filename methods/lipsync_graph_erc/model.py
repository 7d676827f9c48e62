"""The classifier of LipSync graph ERC: unimodal graph encoders feeding a
HierarchicalAttentionFusion, the losses, and an exponential moving average of the weights.

Fusion (read from the original ``HierarchicalAttentionFusion`` with ``use_moe=False``,
``use_contrastive=False``, written anew), per utterance:

1. per modality: Linear -> 256, LayerNorm, GELU, Dropout; feature gate x * sigmoid(MLP(x));
2. pairwise alignment of modality pairs (m1, m2), m1 before m2 in the order v, a, t (so text is
   never mixed): m1 <- 0.7 m1 + 0.3 (softmax(-cdist / tau) @ m2), where the original's soft assignment runs over the whole mini-batch; ours over the turns of
   the same dialogue only;
3. adaptive fusion gate: softmax weights over the modalities from their concatenation -> a
   fused context; information gates x * sigmoid(MLP([x; context])) and modality gates
   x * sigmoid(MLP([x; context])) + 0.1 x;
4. cross-attention per modality (8 heads): query that modality, keys/values the others, + 0.2 q;
5. a 3-layer pre-norm Transformer over the modality tokens, pooled by 3 learned queries
   (multi-head attention), flattened (768) -> 512 -> 256 -> mean of 3 linear heads;
6. auxiliary heads (256 -> 128 -> C) on each gated modality vector.

Left out because the original computes them but never uses them (no gradient reaches them):
the per-modality "quality detector" and the confidence and uncertainty estimators.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from merbench.errors import ConfigError

from .graph import build_graph_encoder

IGNORE = -100


class FeatureGate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim // 2), nn.LayerNorm(dim // 2), nn.ReLU(),
                                  nn.Linear(dim // 2, dim), nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


class InformationGate(nn.Module):
    """A scalar gate per utterance from the modality vector and the fused context."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(2 * dim, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, x, context):
        return x * self.gate(torch.cat([x, context], dim=-1))


class AdaptiveFusionGate(nn.Module):
    def __init__(self, dim: int, n: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim * n, dim), nn.LayerNorm(dim), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, n), nn.Softmax(dim=-1))

    def forward(self, feats: Sequence[torch.Tensor]):
        w = self.net(torch.cat(list(feats), dim=-1))
        return sum(f * w[..., i:i + 1] for i, f in enumerate(feats)), w


# The original fuses modalities in the order v, a, t and aligns each only onto the later ones:
# visual <- audio, text; audio <- text; text is never mixed.
ALIGN_ORDER = ("v", "a", "t")


def alignment_order(modalities: Sequence[str], order: Sequence[str]) -> list[str]:
    """The modalities in ``order`` (each aligned onto the ones after it); every one must be named once."""
    order = list(order)
    if sorted(set(order)) != sorted(order) or not set(modalities) <= set(order):
        raise ConfigError(f"lipsync_graph_erc: model.align_order {order} must name each of {list(modalities)} once",
                          fix=f"use the original's order {list(ALIGN_ORDER)} (or a permutation of it)")
    return [m for m in order if m in modalities]


class DialogueAlignment(nn.Module):
    """Soft alignment of one modality onto another within each dialogue: every turn gets a
    softmax(-distance / tau)-weighted mix of the other modality's vectors of the same dialogue."""

    def __init__(self, dim: int):
        super().__init__()
        self.source = nn.Linear(dim, dim)
        self.target = nn.Linear(dim, dim)
        self.temperature = nn.Parameter(torch.tensor(1.0))

    def forward(self, src, tgt, utt_mask):
        """``src``, ``tgt`` (B, U, D); ``utt_mask`` (B, U). Returns the aligned (B, U, D)."""
        cost = torch.cdist(self.source(src), self.target(tgt), p=2)  # (B, U, U)
        # The original divides exp(-cost / tau) by its row sum (the same softmax, but it can
        # underflow to 0/0); tau is floored so that a learned tau <= 0 cannot flip or blow it up.
        tau = self.temperature.clamp(min=1e-2)
        logits = (-cost / tau).masked_fill(~utt_mask[:, None, :], float("-inf"))
        return torch.softmax(logits, dim=-1) @ tgt


class HierarchicalAttentionFusion(nn.Module):
    def __init__(self, input_dims: dict[str, int], num_classes: int, modalities: Sequence[str], dim: int = 256,
                 layers: int = 3, heads: int = 8, dropout: float = 0.15, pool_queries: int = 3,
                 align_mix: float = 0.3, align_order: Sequence[str] = ALIGN_ORDER):
        super().__init__()
        self.modalities = list(modalities)
        self.align_mix = float(align_mix)
        self.align_order = alignment_order(self.modalities, align_order)
        M = len(self.modalities)
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.Linear(input_dims[m], dim), nn.LayerNorm(dim, eps=1e-5),
                                                    nn.GELU(), nn.Dropout(dropout)) for m in self.modalities})
        self.selectors = nn.ModuleDict({m: FeatureGate(dim) for m in self.modalities})
        self.aligners = nn.ModuleDict({f"{a}_{b}": DialogueAlignment(dim) for i, a in enumerate(self.align_order)
                                       for b in self.align_order[i + 1:]})
        self.adaptive = AdaptiveFusionGate(dim, M)
        self.info_gates = nn.ModuleDict({m: InformationGate(dim) for m in self.modalities})
        self.gates = nn.ModuleDict({m: nn.Sequential(nn.Linear(2 * dim, dim), nn.LayerNorm(dim, eps=1e-5), nn.GELU(),
                                                     nn.Dropout(dropout), nn.Linear(dim, dim), nn.Sigmoid())
                                    for m in self.modalities})
        self.cross = nn.ModuleDict({m: nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
                                    for m in self.modalities}) if M > 1 else None
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.pool_queries = nn.Parameter(torch.randn(1, pool_queries, dim))
        self.pool = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.integrator = nn.Sequential(nn.Linear(pool_queries * dim, 2 * dim), nn.LayerNorm(2 * dim, eps=1e-5), nn.GELU(),
                                        nn.Dropout(dropout), nn.Linear(2 * dim, dim), nn.LayerNorm(dim, eps=1e-5),
                                        nn.Dropout(dropout * 0.5))
        self.classifiers = nn.ModuleList([nn.Linear(dim, num_classes) for _ in range(3)])
        self.aux = nn.ModuleDict({m: nn.Sequential(nn.Linear(dim, dim // 2), nn.GELU(), nn.Dropout(dropout * 0.5),
                                                   nn.Linear(dim // 2, num_classes)) for m in self.modalities})

    def forward(self, x: dict[str, torch.Tensor], utt_mask: torch.Tensor):
        """``x[m]`` (B, U, D_m) -> logits (N, C) and auxiliary logits {m: (N, C)} over the N real turns."""
        p = {m: self.selectors[m](self.proj[m](x[m])) for m in self.modalities}
        if self.aligners:
            aligned = {}
            for i, a in enumerate(self.align_order):
                aligned[a] = p[a]
                for b in self.align_order[i + 1:]:
                    mixed = self.aligners[f"{a}_{b}"](p[a], p[b], utt_mask)
                    aligned[a] = (1 - self.align_mix) * aligned[a] + self.align_mix * mixed
            p = aligned
        # From here on every step is per utterance: keep the real turns only.
        p = {m: v[utt_mask] for m, v in p.items()}  # (N, dim)
        context, _ = self.adaptive([p[m] for m in self.modalities])
        p = {m: self.info_gates[m](p[m], context) for m in self.modalities}
        gated = {m: p[m] * self.gates[m](torch.cat([p[m], context], dim=-1)) + 0.1 * p[m] for m in self.modalities}
        tokens = []
        for q in self.modalities:
            q_seq = gated[q].unsqueeze(1)
            if self.cross is None:
                tokens.append(q_seq)
                continue
            kv = torch.stack([gated[m] for m in self.modalities if m != q], dim=1)
            out, _ = self.cross[q](q_seq, kv, kv, need_weights=False)
            tokens.append(out + 0.2 * q_seq)
        h = self.transformer(torch.cat(tokens, dim=1))  # (N, M, dim)
        pooled, _ = self.pool(self.pool_queries.expand(h.shape[0], -1, -1), h, h, need_weights=False)
        z = self.integrator(pooled.reshape(h.shape[0], -1))
        logits = torch.stack([c(z) for c in self.classifiers]).mean(0)
        return logits, {m: self.aux[m](gated[m]) for m in self.modalities}


class LipSyncGraphERC(nn.Module):
    """Graph encoders (optional) -> fusion. Outputs over the (B, U) dialogue grid, zeros on padding."""

    def __init__(self, input_dims: dict[str, int], num_classes: int, modalities: Sequence[str], cfg: dict):
        super().__init__()
        self.modalities = list(modalities)
        self.use_graph = bool(cfg.get("use_graph", True))
        fusion_in = dict(input_dims)
        if self.use_graph:
            gcfg = cfg.get("graph") or {}
            self.graphs = nn.ModuleDict({m: build_graph_encoder(m, input_dims[m], num_classes, gcfg)
                                         for m in self.modalities})
            fusion_in = {m: self.graphs[m].out_dim for m in self.modalities}  # node states feed the fusion
        else:
            self.graphs = None
        self.fusion = HierarchicalAttentionFusion(
            fusion_in, num_classes, self.modalities, dim=int(cfg.get("fusion_dim", 256)),
            layers=int(cfg.get("fusion_layers", 3)), heads=int(cfg.get("fusion_heads", 8)),
            dropout=float(cfg.get("dropout", 0.15)), pool_queries=int(cfg.get("pool_queries", 3)),
            align_mix=float(cfg.get("align_mix", 0.3)), align_order=cfg.get("align_order", ALIGN_ORDER))

    def forward(self, batch: dict) -> dict:
        mask = batch["utt_mask"]
        x = {m: batch["x"][m] for m in self.modalities}
        graph_logits = {}
        if self.graphs is not None:
            speaker = batch.get("speaker")
            for m in self.modalities:
                x[m], graph_logits[m] = self.graphs[m](x[m], mask, speaker)
        logits, aux = self.fusion(x, mask)
        B, U = mask.shape

        def grid(v):
            out = v.new_zeros(B, U, v.shape[-1])
            out[mask] = v
            return out

        return {"logits": grid(logits), "aux_logits": {m: grid(v) for m, v in aux.items()},
                "graph_logits": graph_logits}


class EMAModel(nn.Module):
    """The trained network and an exponential moving average of its weights (``shadow``, not
    trainable). In eval mode the shadow answers once it has been updated at least once, so
    validation, model selection and test predictions use the averaged weights; before any
    update (a freshly built model) the network itself answers."""

    def __init__(self, net: nn.Module, decay: float = 0.999, warmup: bool = True):
        super().__init__()
        self.net = net
        self.shadow = copy.deepcopy(net)
        for p in self.shadow.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self) -> None:
        n = int(self.updates)
        # Decay warm-up (as TensorFlow's ExponentialMovingAverage with num_updates): early
        # averages are not dominated by the random initial weights when updates are few.
        d = min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay
        # The same s = s * d + (1 - d) * p per tensor, in grouped kernels (one Python call, not one per tensor).
        shadow = list(self.shadow.parameters())
        torch._foreach_mul_(shadow, d)
        torch._foreach_add_(shadow, [p.detach() for p in self.net.parameters()], alpha=1.0 - d)
        for s, b in zip(self.shadow.buffers(), self.net.buffers()):
            s.copy_(b)  # BatchNorm statistics: the current ones
        self.updates += 1

    def forward(self, batch: dict) -> dict:
        if not self.training and int(self.updates) > 0:
            return self.shadow(batch)
        return self.net(batch)


# -- losses ------------------------------------------------------------------------------------


def focal_poly_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """The original's CompositePolyLoss: class-weighted CE + alpha * (1 - p_t)^(1 + gamma), where
    p_t is the (unweighted) softmax probability of the true class; plain mean over samples."""
    ce = F.cross_entropy(logits, target, weight=weight, reduction="none")
    pt = torch.softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1) + 1e-7
    return (ce + alpha * (1 - pt) ** (1 + gamma)).mean()


def distillation_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of temperature-softened distributions, times T^2 (batch mean)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=-1), F.softmax(teacher.detach() / t, dim=-1),
                    reduction="batchmean") * t * t


def total_loss(out: dict, labels: torch.Tensor, cfg: dict, class_weight: torch.Tensor | None = None,
               parts: dict | None = None) -> torch.Tensor:
    """0.8 focal-poly + 0.2 label-smoothed CE on the fused logits, + auxiliary focal-poly per
    modality, + graph losses: text teacher focal-poly, audio/visual students
    kd_alpha * focal-poly + (1 - kd_alpha) * KL to the teacher (focal-poly alone without
    distillation or without a text teacher). ``parts`` (a dict) receives each term."""
    y = labels.reshape(-1)
    keep = y != IGNORE
    y = y[keep]
    C = out["logits"].shape[-1]

    def flat(v):
        return v.reshape(-1, C)[keep]

    w = class_weight.to(out["logits"].device) if class_weight is not None else None
    a, g = float(cfg["poly_alpha"]), float(cfg["poly_gamma"])
    main = flat(out["logits"])
    terms = {"focal": float(cfg["focal_weight"]) * focal_poly_loss(main, y, a, g, w),
             "smooth": float(cfg["smooth_weight"]) * F.cross_entropy(main, y, label_smoothing=float(cfg["label_smoothing"]))}
    if cfg["aux_weight"]:
        terms["aux"] = float(cfg["aux_weight"]) * sum(focal_poly_loss(flat(v), y, a, g, w) for v in out["aux_logits"].values())
    graph = out.get("graph_logits") or {}
    if graph and cfg["graph_weight"]:
        gl = 0.0
        teacher = flat(graph["t"]) if "t" in graph else None
        for m, v in graph.items():
            s = flat(v)
            ce = focal_poly_loss(s, y, a, g, w)
            if m != "t" and teacher is not None and cfg["distillation"]:
                kd = distillation_kl(s, teacher, float(cfg["kd_temperature"]))
                if parts is not None:
                    parts[f"kd_{m}"] = kd.detach()
                alpha = float(cfg["kd_alpha"])
                gl = gl + alpha * ce + (1 - alpha) * kd
            else:
                gl = gl + ce
        terms["graph"] = float(cfg["graph_weight"]) * gl
    if parts is not None:
        parts.update({k: v.detach() for k, v in terms.items()})
    return sum(terms.values())

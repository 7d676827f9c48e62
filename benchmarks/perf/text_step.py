"""Where a text_transformer fine-tuning step spends its time: forward + backward, gradient clipping,
the optimizer step, for the default (full fine-tuning, foreach AdamW), the default with fused AdamW,
and the ``cpu`` variant (embeddings and lower 3 blocks frozen, fused AdamW).

    python benchmarks/perf/text_step.py [--threads 1] [--batch 32] [--tokens 16] [--steps 4] [--peak-size 1024] [--compile]

One batch of ``--batch`` sentences padded to ``--tokens`` MiniLM tokens (the synthetic corpus' median
is 15, MELD's 12), the method's own classifier (``methods/text_transformer/model.py``) with the
encoder, lr, weight decay, clipping and AdamW kernels its config files give each setting. The settings
alternate step by step (after one untimed warm-up step each), so that load from other jobs hits all
alike; the medians are printed, with each setting's total relative to the default's. ``--compile``
adds a fourth setting: the default with fused AdamW and its model under ``torch.compile`` (inductor;
compiling happens in its untimed warm-up step, whose time is printed).

Then one more step of the default, profiled (``torch.profiler`` with FLOP counts): the time and FLOPs
of its matrix products (``aten::mm / addmm / bmm / baddbmm``, forward and backward), their rate
against this machine's best matrix-product rate (the best of 5 square ``--peak-size`` products in
torch and in numpy, same thread count), and the step's floor: its matrix-product FLOPs at that best
rate with everything else free. The default's time over that floor bounds what any change that keeps
the same arithmetic can gain on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

COMPILED = "default, fused AdamW, torch.compile"  # with --compile
SETTINGS = {  # name: (variant, --set overrides), resolved from the method's own config files
    "default (foreach AdamW)": ("default", ()),
    "default, fused AdamW": ("default", ("train.optimizer_impl=fused",)),
    "cpu variant (3 blocks + embeddings frozen, fused)": ("cpu", ()),
}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=16, help="padded length of the batch, special tokens included")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per setting")
    ap.add_argument("--compile", action="store_true",
                    help="also time the default with fused AdamW and its model under torch.compile (inductor)")
    ap.add_argument("--peak-size", type=int, default=1024,
                    help="side of the square matrix products that measure the machine's best rate")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from merbench.config import method_config
    from merbench.methods.text_transformer.model import TextClassifier
    from merbench.registry import get_method
    from merbench.text_encoder import encoder_from_config, load_tokenizer
    from merbench.trainer import optimizer_impl

    method_cls = get_method("text_transformer")

    tok = load_tokenizer("all-MiniLM-L6-v2")
    words = "well I really cannot believe that you said this to me again after all this time".split()
    texts = [" ".join(words[i % 5:] + words[:i % 5]) for i in range(args.batch)]
    batch = dict(tok(texts, padding="max_length", truncation=True, max_length=args.tokens, return_tensors="pt"))
    labels = torch.randint(0, 4, (args.batch,), generator=torch.Generator().manual_seed(0))

    settings = dict(SETTINGS)
    if args.compile:
        settings[COMPILED] = ("default", ("train.optimizer_impl=fused",))
    runs = {}
    for name, (variant, overrides) in settings.items():
        cfg = method_config(method_cls, variant, overrides=overrides)
        train = cfg["train"]
        torch.manual_seed(0)
        model = TextClassifier(encoder_from_config(cfg["encoder"]), 4).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=float(train["lr"]), weight_decay=float(train["weight_decay"]),
                                **optimizer_impl(method_cls.name, train))
        runs[name] = (torch.compile(model) if name == COMPILED else model, params, opt, float(train["grad_clip"]), [])

    def step(model, params, opt, clip, times) -> None:
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model({"text": batch}), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)  # as the trainer clips
        t2 = time.perf_counter()
        opt.step()
        times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))

    for name, (model, params, opt, clip, _) in runs.items():
        t0 = time.perf_counter()
        step(model, params, opt, clip, [])  # warm-up: first kernels, lazy optimizer state (and compiling)
        if name == COMPILED:
            print(f"torch.compile: first step (compiling) {time.perf_counter() - t0:.1f} s")
    for _ in range(args.steps):
        for run in runs.values():
            step(*run)

    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch} x {args.tokens} tokens, "
          f"load average {os.getloadavg()[0]:.2f}; median of {args.steps} steps, seconds")
    print(f"{'setting':52s} {'fwd+bwd':>8s} {'clip':>7s} {'AdamW':>7s} {'step':>7s} {'vs default':>10s}")
    base, report = None, {}
    for name, (_, params, _, _, times) in runs.items():
        parts = [statistics.median(t[i] for t in times) for i in range(3)]
        total = sum(parts)
        base = base or total
        n = sum(p.numel() for p in params)
        print(f"{name:52s} {parts[0]:8.3f} {parts[1]:7.3f} {parts[2]:7.3f} {total:7.3f} {base / total:9.2f}x"
              f"   ({n / 1e6:.1f}M trained parameters)")
        report[name] = {"forward_backward_s": parts[0], "clip_s": parts[1], "optimizer_s": parts[2],
                        "step_s": total, "speed_vs_default": base / total, "trained_parameters": n}

    default = next(iter(runs.values()))
    mm = matmul_share(lambda: step(*default[:4], []), args.peak_size, args.threads)
    print(f"\ndefault, one profiled step {mm['step_s']:.3f} s: matrix products {mm['matmul_s']:.3f} s "
          f"({100 * mm['matmul_share']:.0f} %), {mm['matmul_gflop']:.1f} GFLOP at {mm['matmul_gflops']:.1f} GFLOP/s")
    print(f"best square {args.peak_size}^3 product: torch {mm['peak_torch_gflops']:.1f}, numpy "
          f"{mm['peak_numpy_gflops']:.1f} GFLOP/s; the step's products run at {100 * mm['of_peak']:.0f} % of the best")
    print(f"floor (the products at the best rate, all else free): {mm['floor_s']:.3f} s, so at most "
          f"{mm['max_speedup']:.2f}x for the same arithmetic on this machine")
    report["matmul"] = mm
    return report


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _best_rate(product, n: int, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` calls of ``product`` (an n x n by n x n product)."""
    product()  # warm-up
    best = min(_timed(product) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def matmul_share(one_step, peak_size: int, threads: int) -> dict[str, float]:
    """Profile ``one_step()``: its matrix products' time, FLOPs and rate, against the machine's best."""
    import contextlib

    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        t0 = time.perf_counter()
        one_step()
        step_s = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.key in MATMUL_OPS]
    mm_s = sum(e.self_cpu_time_total for e in events) / 1e6
    flop = float(sum(e.flops for e in events))
    a, b = torch.randn(peak_size, peak_size), torch.randn(peak_size, peak_size)
    peak_torch = _best_rate(lambda: a @ b, peak_size)
    try:  # numpy's BLAS at the same thread count as torch
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(threads)
    except ImportError:
        limit = contextlib.nullcontext()
    with limit:
        an, bn = a.numpy(), b.numpy()
        peak_numpy = _best_rate(lambda: an @ bn, peak_size)
    best = max(peak_torch, peak_numpy)
    floor_s = flop / (best * 1e9)
    rate = flop / mm_s / 1e9 if mm_s else 0.0
    return {"step_s": step_s, "matmul_s": mm_s, "matmul_share": mm_s / step_s, "matmul_gflop": flop / 1e9,
            "matmul_gflops": rate, "peak_torch_gflops": peak_torch, "peak_numpy_gflops": peak_numpy,
            "of_peak": rate / best, "floor_s": floor_s, "max_speedup": step_s / floor_s if floor_s else float("inf")}


if __name__ == "__main__":
    main()

"""The performance scripts under benchmarks/perf: structure and padding accounting, never timings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import shared_data_or_skip
from merbench.errors import ConfigError
from merbench.perf import training_throughput as tt

TINY = ("model.hidden=8",)  # small LSTMs: the structure and the padding do not depend on the size


def _skewed(n: int = 16) -> tt.Lengths:
    # Half very short, half long utterances, interleaved: random batches mix them, buckets do not.
    short = np.arange(n) % 2 == 0
    return tt.Lengths(tokens=np.where(short, 3, 40), seconds=np.where(short, 0.05, 0.6),
                      text_source="test", audio_source="test", dataset="synthetic")


@pytest.mark.parametrize("method", ["miust", "multifocus_blstm"])
def test_bucketing_removes_padding_on_skewed_lengths(method):
    r = tt.benchmark_method(method, _skewed(), steps=4, warmup=0, batch_size=4, overrides=TINY)
    off, on = r["off"], r["on"]
    assert off["steps"] == on["steps"] == 4 and off["utterances"] == on["utterances"] == 16
    # Both settings see the same utterances: the same real frames, only the padding differs.
    assert off["real_frames"] == on["real_frames"] == {"t": 8 * 3 + 8 * 40, "a": 8 * 5 + 8 * 60}
    # Sorted by length, each batch of 4 holds only short or only long utterances: no padding at all.
    assert on["padding_fraction"] == 0.0
    assert off["padding_fraction"] > 0.2
    assert r["padded_frames_ratio_on_off"] < 0.8


def test_main_writes_report(tmp_path):
    out = tmp_path / "tp.json"
    report = tt.main(["--dataset-lengths", "lognormal", "--steps", "2", "--warmup", "1", "--batch-size", "3",
                      "--max-seconds", "0.3", "--set", TINY[0], "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    assert "log-normal" in report["lengths"]["text_source"] and "log-normal" in report["lengths"]["audio_source"]
    assert [m["method"] for m in report["methods"]] == ["miust", "multifocus_blstm"]
    for m in report["methods"]:
        assert m["batch_size"] == 3 and m["utterances_per_epoch"] == 6
        audio = m["features"]["a"]  # whatever the method's config names (openSMILE LLDs: 100 Hz)
        assert audio["frames_per_s"] == tt.AUDIO_FPS[audio["extractor"]] and audio["dim"] == tt._frame_dim(audio["extractor"])
        assert m["features"]["t"]["frames_per_s"] is None and m["features"]["t"]["dim"] == 384
        for key in ("off", "on"):
            s = m[key]
            assert s["steps"] == 2 and s["utterances"] == 6 and s["utterances_per_s"] > 0
            assert 0.0 <= s["padding_fraction"] < 1.0
            assert set(s["padding_fraction_by_modality"]) == {"t", "a"}
            # --max-seconds 0.3: no audio sequence is longer than 0.3 s of frames
            assert s["real_frames"]["a"] <= 6 * round(0.3 * audio["frames_per_s"])
        assert math.isfinite(m["speed_ratio_on_off"]) and m["speed_ratio_on_off"] > 0


def test_pooled_method_is_refused():
    with pytest.raises(ConfigError, match="frame-level"):
        tt.build_method("mlp", "synthetic", "cpu")


def test_paired_durations_follow_tokens_and_stay_in_range():
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 100, 2000)
    secs = tt.durations_paired_with(tokens, tt.IEMOCAP_DURATION, rng)
    lo, hi = tt.DURATION_RANGE_S
    assert secs.min() >= lo and secs.max() <= hi
    assert np.corrcoef(np.log(tokens), np.log(secs))[0, 1] > 0.5
    assert 3.0 < secs.mean() < 6.0  # the assumed IEMOCAP mean is 4.5 s


def test_real_corpus_lengths():
    shared_data_or_skip()
    meld = tt.load_lengths("meld")
    assert len(meld) == 9989 and "start/end" in meld.audio_source and "MELD" in meld.text_source
    assert meld.tokens.min() >= 3 and meld.seconds.min() > 0  # [CLS] + a word + [SEP]
    assert 1.0 < np.median(meld.seconds) < 5.0
    iemocap = tt.load_lengths("iemocap")
    assert len(iemocap) == 7433 and "assumed" in iemocap.audio_source


def test_both_lstm_implementations_timed_side_by_side():
    r = tt.benchmark_method("miust", _skewed(8), steps=2, warmup=0, batch_size=4, overrides=TINY,
                            lstms=("fused", "packed"))
    assert set(r["by_lstm"]) == {"fused", "packed"} and r["lstm"] == "fused" and r["off"] == r["by_lstm"]["fused"]["off"]
    # Same utterances and batches either way: only the time differs.
    assert r["by_lstm"]["fused"]["on"]["real_frames"] == r["by_lstm"]["packed"]["on"]["real_frames"]
    assert r["speed_ratio_fused_packed"]["on"] > 0 and r["speed_ratio_fused_on_vs_packed_off"] > 0
    from merbench import rnn

    assert rnn.IMPLEMENTATION == "fused"  # restored after timing


def test_gpu_check_script_runs_a_tiny_suite_on_cpu(tmp_path, monkeypatch):
    """benchmarks/perf/gpu_check.sh, tested on CPU with a tiny suite (the majority floor on mosi-2,
    one seed: no features to extract): it writes the environment, the results, the leaderboard and
    a summary naming each run's wall time, and exits with the sweep's status."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    shared_data_or_skip()
    repo = Path(__file__).resolve().parents[1]
    suite = tmp_path / "tiny.yaml"
    suite.write_text("defaults: {seeds: 1, device: cpu}\nruns:\n  floor: {methods: [majority], protocols: [mosi-2], modalities: [t]}\n")
    out = tmp_path / "check"
    env = dict(os.environ, SUITE=str(suite), SKIP_INSTALL="1", MERBENCH_HOME=str(tmp_path / "home"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(repo / "benchmarks/perf/gpu_check.sh"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["environment"]["cuda_available"] in (True, False) and summary["sweep_exit_status"] == 0
    [run] = summary["runs"]
    assert (run["method"], run["protocol"], run["seed"]) == ("majority", "mosi-2", 0)
    assert run["wall_time_s"] is not None and run["device"].startswith("cpu")
    assert (out / "LEADERBOARD.md").read_text().count("majority") >= 1
    assert "| majority | default | mosi-2 | t | 0 | " in (out / "summary.md").read_text()


def test_gpu_summary_reads_nvidia_smi_samples(tmp_path):
    from merbench.perf.gpu_summary import gpu_samples

    f = tmp_path / "gpu_samples.csv"
    f.write_text("2026/12/03 10:00:00.000, 0, 500, 143771\n2026/12/03 10:00:01.000, 80, 20480, 143771\n"
                 "2026/12/03 10:00:02.000, 60, 18000, 143771\n2026/12/03 10:00:03.0")  # the last line cut by the kill
    g = gpu_samples(f)
    assert g["samples"] == 3 and g["peak_memory_mib"] == 20480 and g["memory_total_mib"] == 143771
    assert g["mean_utilisation_pct"] == pytest.approx(140 / 3) and g["mean_utilisation_busy_pct"] == pytest.approx(70)
    assert gpu_samples(tmp_path / "absent.csv") == {"samples": 0}


def test_decode_speed_report_structure(tmp_path):
    """benchmarks/perf/decode_speed.py on one tiny clip: every task timed, a ratio where both sides ran."""
    pytest.importorskip("av")
    from merbench.perf import decode_speed

    report = decode_speed.main(["--clips", "1", "--seconds", "0.4", "--width", "64", "--height", "48",
                                "--repeats", "1", "--out", str(tmp_path / "d.json")])
    assert json.loads((tmp_path / "d.json").read_text()) == json.loads(json.dumps(report))
    res = report["results"]
    assert set(res) == {"video_32_frames", "video_all_frames", "audio_from_mp4", "audio_from_wav"}
    for task in ("video_32_frames", "video_all_frames"):
        row = res[task]
        assert row["old_s_per_clip"] > 0 and row["pyav_s_per_clip"] > 0
        assert row["ratio_old_over_pyav"] == pytest.approx(row["old_s_per_clip"] / row["pyav_s_per_clip"], rel=0.05, abs=0.02)
    assert ("ratio_old_over_pyav" in res["audio_from_mp4"]) == (report["ffmpeg_program"] is not None)


def test_main_job_stage_times_run_from_one_stage_line_to_the_next():
    from merbench.perf.main_job import _stages

    stamped = [(2.0, 1.0, "· corpus: synthetic"), (3.0, 1.5, "synthetic corpus 300/300"),
               (50.0, 90.0, "· features: audio-egemaps (audio)"), (80.0, 150.0, "· seed 0: weighted_f1 80.1 -> x")]
    assert _stages(stamped, 90.0, 160.0) == [("start-up (imports, config, checks)", 2.0, 1.0),
                                             ("corpus: synthetic", 48.0, 89.0),
                                             ("features: audio-egemaps (audio)", 30.0, 60.0),
                                             ("seed 0: weighted_f1 80.1 -> x", 10.0, 10.0)]


@pytest.mark.slow
def test_text_step_compile_adds_the_compiled_default(capsys):
    """--compile times a fourth setting: the default with fused AdamW, its model under torch.compile
    (the same parameters trained)."""
    from merbench.perf import text_step

    report = text_step.main(["--steps", "1", "--batch", "2", "--tokens", "8", "--peak-size", "64", "--compile"])
    report.pop("matmul")
    assert list(report) == [*text_step.SETTINGS, text_step.COMPILED]
    compiled = report[text_step.COMPILED]
    assert compiled["trained_parameters"] == report["default (foreach AdamW)"]["trained_parameters"]
    assert compiled["step_s"] > 0 and "torch.compile: first step (compiling)" in capsys.readouterr().out


def test_text_step_times_each_part_of_the_three_settings(capsys):
    """benchmarks/perf/text_step.py with one tiny step: every setting timed part by part, and the cpu
    variant trains only the upper blocks, the pooler and the head."""
    from merbench.perf import text_step

    report = text_step.main(["--steps", "1", "--batch", "2", "--tokens", "8", "--peak-size", "64"])
    mm = report.pop("matmul")
    assert list(report) == list(text_step.SETTINGS)
    # The profiled step's matrix products: part of the step, FLOPs counted, a floor below the step.
    assert 0 < mm["matmul_s"] < mm["step_s"] and 0 < mm["matmul_share"] < 1
    assert mm["matmul_gflop"] > 0 and mm["peak_torch_gflops"] > 0 and mm["peak_numpy_gflops"] > 0
    assert 0 < mm["floor_s"] < mm["step_s"] and mm["max_speedup"] == pytest.approx(mm["step_s"] / mm["floor_s"])
    for row in report.values():
        assert row["step_s"] == pytest.approx(row["forward_backward_s"] + row["clip_s"] + row["optimizer_s"])
        assert min(row["forward_backward_s"], row["clip_s"], row["optimizer_s"]) > 0
    full, fused, cpu = report.values()
    assert full["trained_parameters"] == fused["trained_parameters"] > 2 * cpu["trained_parameters"] > 0
    assert full["speed_vs_default"] == 1.0
    out = capsys.readouterr().out
    assert "fwd+bwd" in out and "at most" in out

"""Throughput and runtime: the device peak table, MFU, the step clock, what a lineage reports per
branch, precision checks; the CUDA path (marked ``gpu``: skipped without a CUDA device)."""

from __future__ import annotations

import pytest
import torch

from trials.errors import ConfigError
from trials.lineage import run_lineage
from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages
from trials.runtime import check_runtime
from trials.sinks import MemorySink
from trials.throughput import StepClock, mfu, peak_flops

WSD = {"cooldown_fraction": 0.25, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}


@pytest.mark.parametrize(("name", "precision", "tflops"), [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.0),  # SXM
    ("NVIDIA H100 PCIe", "bf16", 756.0),  # not the SXM figure although it contains "H100"
    ("NVIDIA H100 NVL", "tf32", 418.0),
    ("NVIDIA H200", "bf16", 989.0),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
    ("NVIDIA A100 80GB PCIe", "fp32", 19.5),
    ("NVIDIA L40S", "bf16", 362.0),  # not L4's although it contains "L4"
    ("NVIDIA L4", "bf16", 121.0),
    ("NVIDIA A10", "bf16", 125.0),
])
def test_device_peaks_match_the_data_sheets_dense_figures(name, precision, tflops):
    assert peak_flops(name, precision) == tflops * 1e12


def test_mfu_is_undefined_on_cpu_and_unknown_gpus_and_closed_form_elsewhere():
    assert peak_flops("cpu", "fp32") is None and peak_flops("NVIDIA GeForce GTX 1080", "fp32") is None
    assert mfu(1e12, 0.01, None) is None and mfu(1e12, 0.0, 1e15) is None
    assert mfu(1e12, 0.01, 1e15, devices=2) == pytest.approx(0.05)  # 1e14 FLOP/s of 2e15


def test_step_clock_adds_each_update_to_its_branch():
    ticks = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.5])
    clock = StepClock(clock=lambda: next(ticks))
    assert clock.timed("trunk", lambda x: x * 2, 3) == 6
    clock.timed("h=8", lambda: None)
    clock.timed("trunk", lambda: None)
    assert clock.of("trunk") == (2, 1.0) and clock.of("h=8") == (1, 0.25) and clock.of("nope") == (0, 0.0)


def lineage(**kw):
    s = TrialSetting(workload="linreg", workload_params={"dim": 20}, optimizer="sgd", optimizer_params={},
                     schedule_free=False, schedule="wsd", schedule_params=WSD, peak_lr=0.05, warmup=2,
                     batch_size=4, seed=0, horizons=(16, 32))
    (spec,), _ = plan_lineages([s], PlanConfig(**kw))
    return spec


def test_a_lineage_times_exactly_the_updates_each_branch_trained():
    spec = lineage()
    sink = MemorySink()
    run_lineage(spec, sink=sink)
    trunk, short, long = (sink.results[b] for b in ("trunk", "h=16/1-sqrt@12", "h=32/1-sqrt@24"))
    assert (trunk["timed_steps"], short["timed_steps"], long["timed_steps"]) == (24, 4, 8)  # trunk to the last fork
    for r in (trunk, short, long):
        assert 0 < r["train_time_s"] <= r["wall_time_s"] and r["device"] == "cpu"
        assert (r["workers"], r["precision"], r["tokens_per_step"]) == (1, "fp32", 4)


def test_precisions_other_than_fp32_need_cuda():
    check_runtime("fp32", False, "cpu")
    for precision in ("bf16", "tf32"):
        with pytest.raises(ConfigError, match=rf"^runtime\.precision must be 'fp32' on device 'cpu'.*got '{precision}'"):
            check_runtime(precision, False, "cpu")
    with pytest.raises(ConfigError, match=r"^runtime\.precision must be one of \['bf16', 'fp32', 'tf32'\], got 'fp16'"):
        check_runtime("fp16", False, "cpu")


def test_compiling_in_place_keeps_the_module_and_its_state_dict_keys():
    from trials.runtime import compile_model
    from trials.workloads import build_workload

    w = build_workload("char_gpt", seed=0, batch_size=2, size="nano", eval_batches=1)
    keys = list(w.model.state_dict())
    assert compile_model(w.model) is w.model and list(w.model.state_dict()) == keys
    assert list(torch.compile(w.model).state_dict()) != keys  # the wrapper would have renamed them


# ---------------------------------------------------------------------------------- CUDA (gpu)
def gpt_lineage(**kw):
    s = TrialSetting(workload="char_gpt", workload_params={"size": "micro", "eval_batches": 2}, optimizer="adamw",
                     optimizer_params={}, schedule_free=False, schedule="constant", schedule_params={},
                     peak_lr=1e-3, warmup=5, batch_size=32, seed=0, horizons=(40,))
    (spec,), _ = plan_lineages([s], PlanConfig(device="cuda", **kw))
    return spec


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_tracks_fp32_and_records_mfu_on_a_known_gpu():
    runs = {}
    for precision in ("fp32", "bf16"):
        sink = MemorySink()
        run_lineage(gpt_lineage(precision=precision), sink=sink)
        runs[precision] = sink
    fp32 = {r["step"]: r["loss"] for r in runs["fp32"].rows() if r["split"] == "eval"}
    bf16 = {r["step"]: r["loss"] for r in runs["bf16"].rows() if r["split"] == "eval"}
    assert fp32.keys() == bf16.keys()
    assert max(abs(fp32[k] - bf16[k]) for k in fp32) < 0.05 and fp32 != bf16  # close, not the same bits
    assert torch.backends.cuda.matmul.allow_tf32  # bf16 ran last: TF32 on for the fp32 leftovers
    trunk = runs["bf16"].results["trunk"]
    assert trunk["device"].startswith("NVIDIA") and trunk["precision"] == "bf16"
    if peak_flops(trunk["device"], "bf16") is not None:
        step = trunk["train_time_s"] / trunk["timed_steps"]
        assert 0 < mfu(trunk["flops_per_step"], step, peak_flops(trunk["device"], "bf16")) < 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_lineage_tracks_the_plain_curve():
    plain, compiled = MemorySink(), MemorySink()
    run_lineage(gpt_lineage(), sink=plain)
    run_lineage(gpt_lineage(compile=True), sink=compiled)
    a = {r["step"]: r["loss"] for r in plain.rows() if r["split"] == "eval"}
    b = {r["step"]: r["loss"] for r in compiled.rows() if r["split"] == "eval"}
    assert max(abs(a[k] - b[k]) for k in a) < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_nccl_workers_track_one_worker():
    one, two = MemorySink(), MemorySink()
    run_lineage(gpt_lineage(), sink=one)
    run_lineage(gpt_lineage(workers=2), sink=two)
    a = {r["step"]: r["loss"] for r in one.rows() if r["split"] == "train"}
    b = {r["step"]: r["loss"] for r in two.rows() if r["split"] == "train"}
    assert max(abs(a[k] - b[k]) for k in a) < 1e-3
    assert two.results["trunk"]["workers"] == 2

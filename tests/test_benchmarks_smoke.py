"""The benchmarks run end to end in their ``--quick`` mode and print their ratio lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import baseline, batching_ratio, engine, int8, latency, load, worker_footprint
from benchmarks.common import publish_untrained
from shared.backends.fake import FakeBackend
from shared.bundled import bundled_names

RATIO = r"batching_on/off = (\d+\.\d\d)"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    publish_untrained(root, names=("sketch2photo",))
    return root


def test_batching_beats_one_at_a_time_on_a_fixed_cost_backend() -> None:
    # 20 ms per forward pass whatever the batch: 8 clients batched should get ~8x through
    backend = FakeBackend(latency_s=0.02)
    res = batching_ratio.measure_ratio(
        backend, clients=8, seconds=0.5, repeats=1, max_batch=16, delay_ms=5
    )
    assert res.on[0].mean_batch > 2
    assert res.off[0].mean_batch == 1
    assert res.ratio > 2


def test_engine_quick_prints_table_and_ratio_per_backend(
    model_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert engine.main(["--quick", "--model-root", str(model_root)]) == 0
    out = capsys.readouterr().out
    for backend in ("onnx:CPUExecutionProvider", "torchscript:cpu"):
        assert re.search(rf"^\| {backend} threads=default \| 4 \| \d+\.\d \|", out, re.M)
        assert re.search(rf"^{RATIO} \({backend}", out, re.M)
    assert "- cores (os.cpu_count):" in out


def test_int8_quick_times_both_graphs_of_every_quantized_bundled_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = [name for name, _ in int8.quantized_models()]
    assert "sketch2photo" in names
    assert int8.main(["--quick"]) == 0
    out = capsys.readouterr().out
    timed = r"(\d+\.\d\d \| ){2}\d+\.\d\d \|$"  # fp32 ms, int8 ms, speed-up
    for name in names:
        assert re.search(rf"^\| {name} \| 1 \| 1 \| {timed}", out, re.M), out
        assert re.search(rf"^\| {name} \| accepted \| SSIM drop <= ", out, re.M), out


@pytest.mark.integration
def test_load_quick_drives_two_stacks_and_prints_ratios(
    model_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = load.main(["--quick", "--model-root", str(model_root)])
    out = capsys.readouterr().out
    assert code == 0, out
    for mode in ("on", "off"):  # both stacks served requests without errors
        assert re.search(rf"^\| {mode} \| 4 \| [1-9]\d* \| 0 \|", out, re.M), out
    assert re.search(rf"^{RATIO} \(throughput\)", out, re.M)
    assert re.search(r"^batching_on/off p50 = \d+\.\d\d", out, re.M)


@pytest.mark.integration
def test_baseline_quick_measures_the_naive_app_and_the_stack_on_the_same_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = baseline.main(["--clients", "2", "--seconds", "1", "--rounds", "1", "--warmup", "0.5"])
    out = capsys.readouterr().out
    assert code == 0, out
    # the bundled sketch2photo ships an int8 copy: the naive app runs both graphs
    for app in ("naive", "naive-int8", "stack"):  # all answered, no errors, a CPU figure
        row = rf"^\| 2 \| {app} \| \d+\.\d \| \d+ \| \d+ \| 0 \| \d+\.\d \|"
        assert re.search(row, out, re.M), out
    rows = re.findall(r"^\| 2 \| ([a-z0-9-]+) \| (\d+\.\d) \| .* \| (\d+\.\d\d) \|$", out, re.M)
    rps = {app: float(r) for app, r, _ in rows}
    best_naive = max(rps["naive"], rps["naive-int8"])
    for app, _, ratio in rows:  # each app's throughput over the faster naive app's
        assert float(ratio) == pytest.approx(rps[app] / best_naive, abs=0.02), out


def test_latency_splits_one_clients_request_into_stages_that_add_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = latency.main(["--requests", "15", "--warmup", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    ms = dict(re.findall(r"^\| ([a-z0-9 ,-]+?) \| (-?\d+\.\d\d) \|$", out, re.M))
    stages = {k: float(v) for k, v in ms.items()}
    for stage in ("api in", "queue", "worker", "model", "api out", "naive app, whole request"):
        assert stages[stage] > 0, out
    assert stages["worker"] > stages["model"], out  # the model runs inside the worker stage
    parts = stages["api in"] + stages["queue"] + stages["worker"] + stages["api out"]
    assert parts == pytest.approx(stages["total"], rel=0.5), out  # medians of a sum
    diff = stages["total"] - stages["naive app, whole request"]
    assert stages["stack p50 - naive p50"] == pytest.approx(diff, abs=0.02), out


def test_latency_marks_time_the_steps_inside_the_api_and_the_worker_in_request_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = latency.main(["--requests", "10", "--warmup", "2", "--marks"])
    out = capsys.readouterr().out
    assert code == 0, out
    steps = re.findall(r"^\| ([a-z_]+) -> ([a-z_]+) \| (-?\d+\.\d\d) \|$", out, re.M)
    assert [a for a, _, _ in steps] == list(latency.TIMELINE[:-1]), out  # every mark was hit
    assert [b for _, b, _ in steps] == list(latency.TIMELINE[1:]), out
    ms = {f"{a} -> {b}": float(v) for a, b, v in steps}
    assert ms["submit -> batched"] > 0, out  # the model runs between these two marks
    assert ms["sent -> created_at"] > 0, out


@pytest.mark.integration
def test_worker_footprint_starts_a_worker_per_case_and_every_model_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = worker_footprint.main(["--repeats", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = re.findall(
        r"^\| (all \d+ bundled models|the two defaults .*?) \| (\d+) \| .* \| 0 \|$", out, re.M
    )
    # every bundled model loaded, then with S2I_MODELS only the two defaults; no call failed
    assert [int(n) for _, n in rows] == [len(bundled_names()), 2], out

"""``latentseg bench`` end to end at the tiny size, and its parts: FLOP counting, peaks, the data pipeline."""

from __future__ import annotations

import json

import pytest

from latentseg import cli
from latentseg.bench.data import bench_data
from latentseg.bench.flops import count_flops, known_peaks
from latentseg.bench.profiles import PROFILES, bench_config
from tests.helpers import PARAMS, data_config
from tests.train.speed_fixtures import one_thread

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


@pytest.mark.slow
def test_bench_runs_end_to_end_and_reports_both_modes(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--profile", "tiny", "--iterations", "1", "--no-data", "--peak-bf16-tflops", "1",
                     "--peak-fp32-tflops", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("machine:", "torch", "UTC", "FLOPs per iteration", "fp32-eager", "bf16", "speed-up", "MFU"):
        assert needle in text
    report = json.loads(out.read_text())
    modes = {m["mode"]: m for m in report["modes"]}
    assert set(modes) == {"fp32-eager", "bf16"}  # no compiled mode on the CPU unless asked
    for m in modes.values():
        assert m["ms_per_iteration"] > 0 and m["images_per_second"] > 0 and m["peak_memory_bytes"] > 0
        assert 0 < m["mfu"] < 1
    assert modes["bf16"]["precision"] == "bf16" and modes["bf16"]["layout"] == "NHWC"
    assert modes["bf16"]["first_loss"] == pytest.approx(modes["fp32-eager"]["first_loss"], rel=2e-2)
    assert report["speedup"] > 0 and report["machine"]["torch"]


def test_flops_of_the_paper_step_are_counted_without_computing():
    paper = PROFILES["paper"]
    flops = count_flops(bench_config(paper, PARAMS), paper)  # on the meta device: instant at any size
    assert 9e12 < flops < 11e12  # ResNet-101 at output stride 8, 20 images of 321x321, forward + backward
    small = PROFILES["tiny"]
    assert count_flops(bench_config(small, PARAMS), small) < flops / 1000


def test_known_peaks_by_device_name():
    assert known_peaks("NVIDIA H100 80GB HBM3")[0] == pytest.approx(989.4)
    assert known_peaks("NVIDIA H100 PCIe")[0] == pytest.approx(756.0)
    assert known_peaks("NVIDIA H200")[2] == pytest.approx(66.9)
    assert known_peaks("NVIDIA A100-SXM4-80GB")[0] == pytest.approx(312.0)
    assert known_peaks("NVIDIA H100 NVL") is None and known_peaks("") is None


def test_data_pipeline_cost_per_image():
    result = bench_data(data_config(), images=2, size=(60, 80))
    assert result.decode_ms > 0 and result.augment_ms > 0
    assert result.total_ms == pytest.approx(result.decode_ms + result.augment_ms)

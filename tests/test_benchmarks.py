"""Every script under benchmarks/ runs, at its smallest size (seconds): none stops running unseen again. A new
script needs its smoke command here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = {  # script -> its arguments at the smallest size ({tmp}: a temporary folder)
    "latent_recovery.py": ["--smoke", "--json", "{tmp}/study.json"],
    "run_breakdown.py": ["--smoke", "--json", "{tmp}/run.json"],
    "demo_budget.py": ["--targets", "split@iit", "--json", "{tmp}/budget.json"],
    "stage_startup.py": ["--repeats", "1", "--out", "{tmp}/startup.json"],
    "bench_prepare.py": ["--voc-images", "4", "--voc-size", "40x30", "--city-images", "2", "--city-size", "64x32",
                         "--workers", "1"],
    "cluster_cost.py": ["--tables", "table5", "--experiments", "voc-1_8-k10", "--json", "{tmp}/cost.json"],
    "predict_large_photo.py": ["--smoke", "--out", "{tmp}/photo"],
}


def test_every_benchmark_script_has_a_smoke_command():
    assert sorted(SMOKE) == sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_at_its_smallest_size(script, tmp_path):
    args = [a.format(tmp=tmp_path) for a in SMOKE[script]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LATENTSEG_WARM", None)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = [a for a in args if a.startswith(str(tmp_path)) and a.endswith(".json")]
    assert all(Path(p).is_file() for p in written), written

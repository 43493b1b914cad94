"""The warm interpreter (latentseg/util/warm.py): a stage run through it behaves as the same stage run directly —
same output, exit status, arguments, directory, environment and freshly imported latentseg — and dies with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from latentseg.util.warm import ENV, started

ROOT = Path(__file__).resolve().parents[1]

PROBE = """\
from latentseg.util.warm import hand_over

hand_over()

import os
import sys

import fresh_module

print("argv", sys.argv[1:])
print("cwd", os.getcwd())
print("env", os.environ.get("PROBE_VALUE"))
print("path0", sys.path[0])
print("fresh", fresh_module.VALUE)
print("latentseg modules", sorted(m for m in sys.modules if m.startswith("latentseg")))
print("served", bool(os.environ.get("_LATENTSEG_WARM_CHILD")))
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path / "lib")])
    return {**env, **extra}


def _serve(tmp_path: Path, preload: tuple[str, ...]) -> Iterator[Path]:
    sock = tmp_path / "warm.sock"
    with started(sock, idle_timeout=60, env=_env(tmp_path), preload=preload):
        yield sock
    assert not sock.exists()


@pytest.fixture
def light_server(tmp_path: Path) -> Iterator[Path]:
    yield from _serve(tmp_path, ("json",))


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "fresh_module.py").write_text("VALUE = 1\n")
    script = tmp_path / "stages" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    return script


def _run(script: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_stage_through_the_server_behaves_as_run_directly(tmp_path, light_server, probe):
    env = _env(tmp_path, PROBE_VALUE="x y", PROBE_EXIT="3")
    direct = _run(probe, tmp_path, env, "--a", "b c")
    warm = _run(probe, tmp_path, {**env, ENV: str(light_server)}, "--a", "b c")
    assert direct.returncode == warm.returncode == 3
    assert "served True" in warm.stdout and "served False" in direct.stdout
    assert warm.stdout.replace("served True", "served False") == direct.stdout
    assert warm.stderr == direct.stderr == "to stderr\n"
    kept = "latentseg modules ['latentseg', 'latentseg.util', 'latentseg.util.warm']"  # nothing of the server's
    assert kept in warm.stdout


USER_ERROR = """\
from latentseg.util.warm import hand_over

hand_over()

from latentseg.util.progress import UserError, configure_logging

configure_logging()
raise UserError("params.yaml: profile = 'nope': must be one of demo, paper")
"""


def test_a_stage_ended_by_a_user_error_prints_its_one_line_with_or_without_the_server(tmp_path, light_server):
    script = tmp_path / "stages" / "resolve.py"
    script.parent.mkdir()
    script.write_text(USER_ERROR)
    env = _env(tmp_path)
    direct = _run(script, tmp_path, env)
    warm = _run(script, tmp_path, {**env, ENV: str(light_server)})
    assert direct.returncode == warm.returncode == 1
    assert direct.stderr == warm.stderr == "resolve: params.yaml: profile = 'nope': must be one of demo, paper\n"


def test_code_changed_on_disk_is_the_code_that_runs(tmp_path, light_server, probe):
    env = _env(tmp_path, **{ENV: str(light_server)})
    first = _run(probe, tmp_path, env).stdout
    assert "fresh 1" in first and "served True" in first
    (tmp_path / "lib" / "fresh_module.py").write_text("VALUE = 2\n")
    assert "fresh 2" in _run(probe, tmp_path, env).stdout


def test_without_a_server_or_with_another_import_time_environment_the_stage_runs_itself(tmp_path, light_server,
                                                                                         probe):
    none = _run(probe, tmp_path, _env(tmp_path, **{ENV: str(tmp_path / "absent.sock")}))
    assert none.returncode == 0 and none.stderr == "to stderr\n" and "served False" in none.stdout
    declined = _run(probe, tmp_path, _env(tmp_path, OMP_NUM_THREADS="7", **{ENV: str(light_server)}))
    assert declined.returncode == 0 and "served False" in declined.stdout
    assert "running without it (import-time environment variables differ: OMP_NUM_THREADS)" in declined.stderr


def test_a_killed_stage_takes_its_child_with_it(tmp_path, light_server):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "sleeper.py"
    script.write_text("from latentseg.util.warm import hand_over\nhand_over()\nimport os, time\n"
                      f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n")
    stage = subprocess.Popen([sys.executable, str(script)], env=_env(tmp_path, **{ENV: str(light_server)}))
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert child != stage.pid  # it ran in the server's child
    stage.send_signal(signal.SIGTERM)
    stage.wait(timeout=10)
    deadline = time.monotonic() + 15
    while _alive(child):
        assert time.monotonic() < deadline, "the stage's child outlived it"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


TRAIN = """\
from latentseg.util.warm import hand_over

hand_over()

import torch

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1))
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 2, (4, 14, 14))
for _ in range(5):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
print(repr(loss.item()), [repr(float(p.sum())) for p in net.parameters()])
import os, sys
print("served", bool(os.environ.get("_LATENTSEG_WARM_CHILD")), file=sys.stderr)
"""


@pytest.mark.slow
def test_training_with_the_real_preload_is_bit_identical(tmp_path):
    (tmp_path / "lib").mkdir()
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    from latentseg.util.warm import PRELOAD

    for sock in _serve(tmp_path, PRELOAD):
        direct = _run(script, tmp_path, _env(tmp_path))
        warm = _run(script, tmp_path, _env(tmp_path, **{ENV: str(sock)}))
    assert direct.returncode == warm.returncode == 0, warm.stderr
    assert warm.stdout == direct.stdout
    assert "served True" in warm.stderr and "served False" in direct.stderr

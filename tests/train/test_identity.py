"""A run's identity follows its computation: a change to a logging, file or device helper reuses a finished run,
a change to a loss re-trains it, a comment or docstring alone changes nothing, a moved or renamed module changes
nothing, and another method's module neither re-trains nor re-evaluates a run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentseg.run import evaluation as run_evaluation
from latentseg.train.identity import NOT_COMPUTATION, TRAINING_CODE
from latentseg.util.closure import HELPERS, ROOT, closure, fingerprint

REPO = ROOT.parent
TRAIN_ONE = """
import sys
from pathlib import Path
import latentseg
assert str(Path(latentseg.__file__).resolve()).startswith(sys.argv[1]), latentseg.__file__
from latentseg.train.trainer import train
from tests.helpers import tiny_config, tiny_data
data = tiny_data(Path(sys.argv[2]) / "data")
summary = train(tiny_config(), Path(sys.argv[2]) / "run.pt", data)
print("steps_run", summary.steps_run)
"""


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package to edit, imported before the installed one."""
    shutil.copytree(ROOT, tmp_path / "src" / "latentseg", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "src" / "latentseg"


def code_of(package: Path, method: str = "latent") -> str:
    """The code fingerprint of a run of ``method`` (as ``train/identity.py`` computes it) in ``package``."""
    fingerprint.cache_clear()
    return fingerprint(TRAINING_CODE, NOT_COMPUTATION, package, False, (f"latentseg.methods.{method}",))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_helpers_are_outside_the_identity_and_the_computation_inside(package_copy):
    before = code_of(package_copy)
    names = {p.relative_to(package_copy).as_posix()
             for p in closure(TRAINING_CODE, package_copy, NOT_COMPUTATION, plugins=False)
             | closure("latentseg.methods.latent", package_copy, NOT_COMPUTATION, plugins=False)}
    assert {"losses.py", "methods/latent.py", "methods/shared.py", "data/augment.py", "train/step.py",
            "models/deeplab.py"} <= names
    assert not names & {"util/progress.py", "util/files.py", "util/devices.py", "datasets/palettes.py",
                        "train/checkpoint.py",
                        "methods/hung.py", "methods/s4gan.py"}
    for helper in ("util/progress.py", "util/files.py", "util/devices.py"):
        append(package_copy / helper, "\n\ndef a_new_helper() -> int:\n    return 1\n")
    assert code_of(package_copy) == before
    append(package_copy / "losses.py", '\n# a comment\n\ndef _documented() -> None:\n    """A docstring."""\n')
    changed = code_of(package_copy)
    assert changed != before  # a new function is new code
    text = (package_copy / "losses.py").read_text().replace('"""A docstring."""', '"""Another docstring."""')
    (package_copy / "losses.py").write_text(text.replace("# a comment", "# another comment"))
    assert code_of(package_copy) == changed  # comments and docstrings do not count
    (package_copy / "losses.py").write_text(text.replace("EPS = 1e-12", "EPS = 1e-10"))
    assert code_of(package_copy) != changed


def evaluation_of(package: Path, method: str = "latent") -> str:
    """The evaluation-code fingerprint of a run of ``method`` (``run_evaluation.evaluation_code``) in ``package``."""
    fingerprint.cache_clear()
    return fingerprint(run_evaluation.__name__, HELPERS, package, False, (f"latentseg.methods.{method}",))


def test_another_method_changes_no_run_of_this_one(package_copy):
    before, hung, evaluated = code_of(package_copy), code_of(package_copy, "hung"), evaluation_of(package_copy)
    toy = "from latentseg.methods.base import Method\n\n\nclass Toy(Method):\n    name = 'toy'\n\n\nMETHOD = Toy()\n"
    (package_copy / "methods" / "toy.py").write_text(toy)  # a method added to the registry
    assert code_of(package_copy) == before and evaluation_of(package_copy) == evaluated  # reused, not re-evaluated
    hung_file = package_copy / "methods" / "hung.py"
    hung_file.write_text(hung_file.read_text().replace("lambda_semi * semi", "2 * lambda_semi * semi"))
    assert code_of(package_copy) == before and evaluation_of(package_copy) == evaluated  # the paper's runs too
    assert code_of(package_copy, "hung") != hung  # Hung et al.'s re-train


def test_a_moved_or_renamed_module_changes_no_identity(package_copy):
    """The fingerprints hash the modules' code, not their names or places: a pure move retrains and re-evaluates
    nothing."""
    before, evaluated = code_of(package_copy), evaluation_of(package_copy)
    (package_copy / "data" / "augment.py").rename(package_copy / "data" / "transforms.py")  # a rename
    (package_copy / "core").mkdir()
    (package_copy / "core" / "__init__.py").write_text('"""A new package."""\n')
    (package_copy / "losses.py").rename(package_copy / "core" / "the_losses.py")  # a move, and a rename
    for path in package_copy.rglob("*.py"):
        text = path.read_text()
        text = text.replace("latentseg.data.augment", "latentseg.data.transforms")
        text = text.replace("from latentseg import losses", "from latentseg.core import the_losses")
        text = text.replace("latentseg.losses", "latentseg.core.the_losses")
        path.write_text(text)
    assert code_of(package_copy) == before and evaluation_of(package_copy) == evaluated
    moved = package_copy / "core" / "the_losses.py"
    moved.write_text(moved.read_text().replace("EPS = 1e-12", "EPS = 1e-10"))
    assert code_of(package_copy) != before  # what it computes still counts


@pytest.mark.slow
def test_a_helper_change_reuses_a_trained_run_and_a_loss_change_retrains_it(package_copy, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{package_copy.parent}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}

    def steps_trained() -> int:
        out = subprocess.run([sys.executable, "-c", TRAIN_ONE, str(package_copy.parent), str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.split("steps_run")[-1])

    assert steps_trained() == 6
    append(package_copy / "util" / "progress.py", "\n\ndef a_new_helper() -> int:\n    return 1\n")
    append(package_copy / "util" / "devices.py", "\n# a note\n")
    assert steps_trained() == 0  # reused: nothing trained again
    losses = package_copy / "losses.py"
    losses.write_text(losses.read_text().replace("EPS = 1e-12", "EPS = 1e-11"))
    assert steps_trained() == 6  # the losses changed: trained again from step 0

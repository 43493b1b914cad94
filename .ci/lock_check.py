"""Fail when `make demo` changed what dvc.lock records of the code and parameters: the committed results are then
not the committed code's (someone changed a stage's code or parameters without re-running and committing the
pipeline). Only what the committed code and parameters decide is compared: each stage's command, its parameters,
and its dependencies that no stage writes. Data, weights, checkpoints and results (the outputs of stages, and the
folders that hold them, such as `results`) may differ between machines within the tolerance `make check` enforces.

Usage (after `dvc repro`): python .ci/lock_check.py  — compares the working dvc.lock with the committed one.
"""

from __future__ import annotations

import subprocess
import sys

import yaml


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def sources(lock: dict) -> dict[str, dict]:
    """Per stage: its command, its parameters and the hashes of its deps that no stage writes (code, references):
    not a stage's output, nor anything inside one, nor a folder that holds one."""
    stages = lock.get("stages", {})
    written = [o["path"] for s in stages.values() for o in s.get("outs", [])]
    out = {}
    for name, stage in stages.items():
        deps = {d["path"]: d.get("md5") for d in stage.get("deps", [])
                if not any(_inside(d["path"], w) or _inside(w, d["path"]) for w in written)}
        out[name] = {"cmd": stage.get("cmd"), "params": stage.get("params", {}), "deps": deps}
    return out


def problems(committed: dict, current: dict) -> list[str]:
    """What differs between two dvc.lock documents in what the code and parameters decide."""
    before, after = sources(committed), sources(current)
    found = [f"stage {s}: not in the committed dvc.lock" for s in sorted(set(after) - set(before))]
    found += [f"stage {s}: in the committed dvc.lock but no longer run" for s in sorted(set(before) - set(after))]
    for name in sorted(set(before) & set(after)):
        for what in ("cmd", "params"):
            if before[name][what] != after[name][what]:
                found.append(f"stage {name}: its {what} changed")
        b, a = before[name]["deps"], after[name]["deps"]
        found += [f"stage {name}: dependency {p} changed" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]
    return found


def main() -> int:
    committed = yaml.safe_load(subprocess.run(["git", "show", "HEAD:dvc.lock"], capture_output=True, text=True,
                                              check=True).stdout)
    with open("dvc.lock") as f:
        current = yaml.safe_load(f)
    found = problems(committed, current)
    if found:
        print("dvc.lock is stale: the committed results are not those of the committed code and parameters.",
              file=sys.stderr)
        print("\n".join(found[:40]) + ("\n..." if len(found) > 40 else ""), file=sys.stderr)
        print("Fix: run `make demo` and commit dvc.lock with the results it wrote.", file=sys.stderr)
        return 1
    print(f"dvc.lock: the code and parameters of all {len(current.get('stages', {}))} stages are the committed ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fail when `make demo` changed what dvc.lock records of the code and parameters: the committed results are then
not the committed code's (someone changed a stage's code or parameters without re-running and committing the
pipeline). Hashes of data, checkpoints and results are not compared: they may differ between machines within
the tolerance `make check` enforces.

Usage (after `dvc repro`): python .ci/lock_check.py  — compares the working dvc.lock with the committed one.
"""

from __future__ import annotations

import subprocess
import sys

import yaml


def sources(lock: dict) -> dict[str, dict]:
    """Per stage: its command, its parameters and the hashes of its deps that no stage writes (code, references)."""
    stages = lock.get("stages", {})
    written = [o["path"] for s in stages.values() for o in s.get("outs", [])]
    out = {}
    for name, stage in stages.items():
        deps = {d["path"]: d.get("md5") for d in stage.get("deps", [])
                if not any(d["path"] == w or d["path"].startswith(w.rstrip("/") + "/") for w in written)}
        out[name] = {"cmd": stage.get("cmd"), "params": stage.get("params", {}), "deps": deps}
    return out


def main() -> int:
    committed = yaml.safe_load(subprocess.run(["git", "show", "HEAD:dvc.lock"], capture_output=True, text=True,
                                              check=True).stdout)
    with open("dvc.lock") as f:
        current = yaml.safe_load(f)
    before, after = sources(committed), sources(current)
    problems = [f"stage {s}: not in the committed dvc.lock" for s in sorted(set(after) - set(before))]
    problems += [f"stage {s}: in the committed dvc.lock but no longer run" for s in sorted(set(before) - set(after))]
    for name in sorted(set(before) & set(after)):
        for what in ("cmd", "params"):
            if before[name][what] != after[name][what]:
                problems.append(f"stage {name}: its {what} changed")
        b, a = before[name]["deps"], after[name]["deps"]
        problems += [f"stage {name}: dependency {p} changed" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]
    if problems:
        print("dvc.lock is stale: the committed results are not those of the committed code and parameters.",
              file=sys.stderr)
        print("\n".join(problems[:40]) + ("\n..." if len(problems) > 40 else ""), file=sys.stderr)
        print("Fix: run `make demo` and commit dvc.lock with the results it wrote.", file=sys.stderr)
        return 1
    print(f"dvc.lock: the code and parameters of all {len(after)} stages are the committed ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage `weights`: the initial weights every run starts from (`<out>/coco.pt`, `<out>/imagenet.pt`).

Demo profile: "coco" is made by pretraining the tiny network on a larger synthetic data set of the VOC classes
(the role MS-COCO plays for the paper), "imagenet" is a random initialisation (no file).
"""

import argparse
import tempfile
from pathlib import Path

from latentseg.config import RunConfig, from_dict
from latentseg.data.layout import read_list
from latentseg.data.synthetic import SyntheticSpec, generate
from latentseg.experiments import run_tree
from latentseg.params import load_params, profile_section
from latentseg.pretrain import pretrain
from latentseg.train.trainer import TrainData


def demo_coco(params: dict, spec: dict, out: Path) -> None:
    any_voc_run = next(i for i, e in params["experiments"].items() if e["dataset"] == "voc")
    tree = run_tree(params, any_voc_run)
    tree["optim"] = {**tree["optim"], "iterations": spec["iterations"]}
    cfg = from_dict(RunConfig, {"dataset": "voc", "init": "none", **tree})
    with tempfile.TemporaryDirectory() as tmp:
        meta = generate(SyntheticSpec("voc", spec["num_train"], 0, tuple(spec["size"]), spec["seed"]), tmp)
        data = TrainData(Path(tmp), meta, read_list(Path(tmp) / "train.txt"), [])
        pretrain(cfg, data, Path(tmp) / "run.pt", out / "coco.pt",
                 log=lambda m, s: print(f"pretrain step {s}: ce {m['ce']:.3f}") if s % 100 == 0 else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    _, profile = profile_section(params)
    args.out.mkdir(parents=True, exist_ok=True)
    for init, how in profile["weights"].items():
        if how is None:
            continue
        if "pretrain" in how:
            demo_coco(params, how["pretrain"], args.out)
        else:
            from latentseg.weights import fetch_published

            fetch_published(how["published"], args.out / f"{init}.pt")


if __name__ == "__main__":
    main()

"""Stage `weights`: the initial weights every run starts from (`<out>/coco.pt`, `<out>/imagenet.pt`) and
`<out>/manifest.json`, made as the plan `configs/weights.yaml` (from `profiles.<profile>.weights`) says.

Paper profile: the published checkpoints, downloaded into `<raw>/weights` (or a copy you have), or COCO
pretraining (COCO in `<raw>/coco`, its preparation and resumable run in `<work>`). Demo profile: "coco" is
pretrained on an embedded COCO-format stand-in, "imagenet" is none (random weights, by design).
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

import yaml

from latentseg.util.progress import configure_logging
from latentseg.weights import make_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", type=Path, required=True, help="configs/weights.yaml of stage resolve")
    parser.add_argument("--out", type=Path, required=True, help="folder of the initial weights")
    parser.add_argument("--raw", type=Path, required=True, help="where downloads are kept (weights/, coco/)")
    parser.add_argument("--work", type=Path, required=True, help="COCO preparation and pretraining checkpoint")
    args = parser.parse_args()
    configure_logging()
    manifest = make_weights(yaml.safe_load(args.plan.read_text()), args.out, args.raw, args.work)
    for init, entry in manifest.items():
        print(f"{init}: " + (f"{args.out / entry['file']} ({entry['made_by']})" if entry else "none (random)"))


if __name__ == "__main__":
    main()

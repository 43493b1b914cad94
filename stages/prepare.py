"""Stage `prepare@<dataset>`: write a data set in the prepared layout (latentseg/data/layout.py).

Demo profile: generate the embedded synthetic stand-in. Paper profile: download (or take from `--raw` or the
LATENTSEG_*_ROOT environment variables) the official release and convert it.
"""

import argparse
from pathlib import Path

from latentseg.params import load_params, profile_section
from latentseg.prepare.synthetic import SyntheticSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", choices=["voc", "cityscapes"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True, help="where official archives are kept or fetched")
    args = parser.parse_args()
    _, profile = profile_section(load_params())
    spec = (profile.get("datasets", {}).get(args.dataset) or {}).get("synthetic")
    if spec is not None:
        generate(SyntheticSpec(args.dataset, spec["num_train"], spec["num_val"], tuple(spec["size"]), spec["seed"]),
                 args.out)
    elif args.dataset == "voc":
        from latentseg.prepare.voc import prepare_voc

        prepare_voc(args.out, args.raw / "voc")
    else:
        from latentseg.prepare.cityscapes import prepare_cityscapes

        prepare_cityscapes(args.out, args.raw / "cityscapes")


if __name__ == "__main__":
    main()

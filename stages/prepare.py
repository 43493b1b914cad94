"""Stage `prepare@<dataset>`: write a data set in the prepared layout (latentseg/data/layout.py).

Demo profile: generate the embedded synthetic stand-in (latentseg/prepare/standins/). Paper profile: the official
release, converted by latentseg/prepare/<dataset>.py: a copy you have (`profiles.paper.datasets.<dataset>.source`,
else the LATENTSEG_*_ROOT environment variables: an archive or an extracted folder), else the archives in
`--raw/<dataset>`, else downloaded there (Cityscapes: with CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD).
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

from latentseg.prepare import converter
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.registry.params import load_params, profile_section
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True, help="where official archives are kept or fetched")
    args = parser.parse_args()
    configure_logging()
    name, profile = profile_section(load_params())
    section = profile.get("datasets", {}).get(args.dataset) or {}
    spec = section.get("synthetic")
    if spec is not None:
        generate(SyntheticSpec(args.dataset, spec["num_train"], spec["num_val"], tuple(spec["size"]), spec["seed"]),
                 args.out)
        return
    module = converter(args.dataset)
    release = {k: v for k, v in section.items() if k != "run"}
    unknown = sorted(set(release) - set(module.RELEASE_KEYS))
    if unknown:
        raise SystemExit(f"params.yaml: profiles.{name}.datasets.{args.dataset}: unknown key(s) {unknown}; "
                         f"allowed: synthetic, run, {', '.join(module.RELEASE_KEYS)}")
    module.prepare_release(args.out, args.raw / args.dataset, release)


if __name__ == "__main__":
    main()

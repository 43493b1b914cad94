"""Stage `prepare@<dataset>`: write a data set in the prepared layout (latentseg/data/layout.py).

Demo profile: generate the embedded synthetic stand-in. Paper profile: the official release, converted: a copy you
have (`profiles.paper.datasets.<dataset>.source`, else the LATENTSEG_*_ROOT environment variables: an archive or an
extracted folder), else the archives in `--raw/<dataset>`, else downloaded there (Cityscapes: with
CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD).
"""

import argparse
from pathlib import Path

from latentseg.params import load_params, profile_section
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.progress import configure_logging

RELEASE_KEYS = {"voc": {"source", "sbd_source", "verify_checksum"}, "cityscapes": {"source", "verify_checksum"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", choices=sorted(RELEASE_KEYS))
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
    release = {k: v for k, v in section.items() if k != "run"}
    unknown = sorted(set(release) - RELEASE_KEYS[args.dataset])
    if unknown:
        raise KeyError(f"profiles.{name}.datasets.{args.dataset}: unknown key(s) {unknown}; "
                       f"allowed: synthetic, run, {', '.join(sorted(RELEASE_KEYS[args.dataset]))}")
    verify = release.get("verify_checksum", True)
    if args.dataset == "voc":
        from latentseg.prepare.voc import prepare_voc

        prepare_voc(args.out, args.raw / "voc", voc_source=release.get("source"), sbd_source=release.get("sbd_source"),
                    verify_checksum=verify)
    else:
        from latentseg.prepare.cityscapes import prepare_cityscapes

        prepare_cityscapes(args.out, args.raw / "cityscapes", source=release.get("source"), verify_checksum=verify)


if __name__ == "__main__":
    main()

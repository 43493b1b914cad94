"""Stage `split@<dataset>`: labeled/unlabeled lists for every fraction of the data set (Tables 1-2): a seeded
permutation of the training list, or a published one (`datasets.<dataset>.published_split`: a name of
latentseg/prepare/published_splits.py, fetched into `--raw/splits`, or a pickled permutation you have)."""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

from latentseg.data.splits import write_splits
from latentseg.prepare.published_splits import published_split_file
from latentseg.registry.params import load_params
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--data", type=Path, required=True, help="the prepared data set")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True, help="where published splits are fetched")
    args = parser.parse_args()
    configure_logging()
    section = load_params()["datasets"][args.dataset]
    name = section.get("published_split")
    permutation = published_split_file(name, args.dataset, args.raw) if name else None
    try:
        sizes = write_splits(args.data, args.out, section["fractions"], section["split_seed"],
                             permutation=permutation)
    except ValueError as err:  # a bad fraction or permutation (resolve checks the fractions first); nothing written
        raise SystemExit(f"split@{args.dataset}: {err}") from None
    source = f"published split {name}" if name else f"split seed {section['split_seed']}"
    for slug, (n_lab, n_unl) in sizes.items():
        print(f"{args.dataset} {slug}: {n_lab} labeled, {n_unl} unlabeled ({source})")


if __name__ == "__main__":
    main()

"""Stage `split@<dataset>`: labeled/unlabeled lists for every fraction of the data set (Tables 1-2)."""

import argparse
from pathlib import Path

from latentseg.data.splits import write_splits
from latentseg.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--data", type=Path, required=True, help="the prepared data set")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    section = load_params()["datasets"][args.dataset]
    sizes = write_splits(args.data, args.out, section["fractions"], section["split_seed"],
                         permutation=section.get("published_split"))
    for slug, (n_lab, n_unl) in sizes.items():
        print(f"{args.dataset} {slug}: {n_lab} labeled, {n_unl} unlabeled")


if __name__ == "__main__":
    main()

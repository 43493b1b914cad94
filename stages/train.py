"""Stage `train@<dataset>`: train every run (experiment x seed) of one data set's experiments and evaluate each:
mIoU, per-class IoU, P(l|c), effective latent classes and, on data with planted groups (the demo's stand-ins), the
adjusted Rand index of argmax_l P(l|c) against them (`recovery_ari`). Writes each experiment's metrics file,
P(l|c) tables and training curves under `<results>` (latentseg/run/outputs.py has the layout).

A killed run resumes from its checkpoint; a finished one of the same identity (settings, computation code, data,
initial weights) and evaluated by the current code is not touched, so a change to one experiment trains that
experiment's runs alone. Runs train side by side with `runtime.parallel_runs` > 1, longest first.

Several GPUs for each run: `torchrun --standalone --nproc_per_node N stages/train.py ...`, or set
`LATENTSEG_NPROC_PER_NODE=N` and the stage starts torchrun itself; the runs then train one after another, each on
all N processes (the batch is split, not multiplied); rank 0 logs, checkpoints and evaluates. Under `srun -n N`
(a Slurm step of N tasks) the tasks are the run's processes, as under torchrun.
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

from latentseg.run.stage import train_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", help="a data set of params.yaml: datasets")
    parser.add_argument("--configs", type=Path, required=True, help="the resolved configurations (stage resolve)")
    parser.add_argument("--data", type=Path, required=True, help="the prepared data set")
    parser.add_argument("--splits", type=Path, required=True, help="its split lists")
    parser.add_argument("--weights", type=Path, required=True, help="folder of initial weights (stage weights)")
    parser.add_argument("--runs", type=Path, required=True, help="root of every run's folder")
    parser.add_argument("--results", type=Path, required=True, help="root of the metrics, P(l|c) and curves")
    args = parser.parse_args()
    train_dataset(args.dataset, args.configs, args.data, args.splits, args.weights, args.runs, args.results)


if __name__ == "__main__":
    main()

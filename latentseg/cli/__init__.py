"""The ``latentseg`` command: ``latentseg <subcommand> [options]``; ``latentseg <subcommand> --help`` for each.

Subcommands:
    bench     time the training step of the paper's configuration (optimised against plain fp32 eager)
    config    one experiment's resolved settings, each with the layer of params.yaml it comes from
    predict   segment images with a trained run: semantic and latent-class PNGs and an overlay
    submit    train the pending runs as a Slurm job array; --dry-run, --status
    warm      serve a pre-imported interpreter to the pipeline's stages (each starts in < 1 s, not ~7 s)
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="subcommand")

    from latentseg import bench
    from latentseg.cli import config as config_command
    from latentseg.cli import predict as predict_command
    from latentseg.cli import submit as submit_command
    from latentseg.cli import warm as warm_command

    for name, module, short in (("bench", bench, "time the training step"),
                                ("config", config_command, "show an experiment's settings and their origin"),
                                ("predict", predict_command, "segment images with a trained run"),
                                ("submit", submit_command, "train the pending runs on a Slurm cluster"),
                                ("warm", warm_command, "serve a pre-imported interpreter to the stages")):
        sub = commands.add_parser(name, help=short, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)

    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())

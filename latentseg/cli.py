"""The ``latentseg`` command: ``latentseg <subcommand> [options]``; ``latentseg <subcommand> --help`` for each.

Subcommands:
    bench   time the training step of the paper's configuration (optimised against plain fp32 eager)
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="subcommand")

    from latentseg import bench

    sub = commands.add_parser("bench", help="time the training step", description=bench.__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(sub)
    sub.set_defaults(run=bench.run)

    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())

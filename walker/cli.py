"""The ``diffwalk`` command line.

``diffwalk --help`` lists the subcommands; ``diffwalk example`` runs the
default built-in example.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _cmd_example(args: argparse.Namespace) -> int:
    from .examples import EXAMPLES, run_example
    if args.list:
        for name, (_, desc) in EXAMPLES.items():
            print(f"{name:12s} {desc}")
        return 0
    try:
        run_example(args.name, args.output)
    except KeyError as exc:
        print(f"diffwalk example: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from sequences import __doc__ as _  # noqa: F401  (import check: the packages are installed)
    p = argparse.ArgumentParser(prog="diffwalk", description="Monte Carlo diffusion-MRI simulator and validation suite.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="list or run a built-in example")
    ex.add_argument("name", nargs="?", default="all", help="example name, or 'all' (default)")
    ex.add_argument("-o", "--output", default="figures", help="output folder (default: ./figures)")
    ex.add_argument("--list", action="store_true", help="list the examples and exit")
    ex.set_defaults(func=_cmd_example)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffwalk`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""The ``ltr`` console script: one entry point, one module per sub-command.

Each sub-command module defines ``register(subparsers)`` and imports its heavy dependencies inside
its ``run`` function, so ``ltr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ltr import __version__
from ltr.errors import LtrError

# name of the sub-command -> module under ltr.cli that registers it (order = order in --help)
COMMANDS: dict[str, str] = {
    "demo": "ltr.cli.demo",
    "train": "ltr.cli.train",
    "evaluate": "ltr.cli.evaluate",
    "convert": "ltr.cli.convert",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltr", description="Learning-to-rank reranking: train, evaluate, serve, score."
    )
    parser.add_argument("--version", action="version", version=f"ltr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.func(args) or 0)
    except (LtrError, FileNotFoundError, IsADirectoryError) as exc:
        # Errors a user can cause: one line, no traceback.
        print(f"ltr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ltr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

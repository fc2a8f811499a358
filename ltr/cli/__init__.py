"""The ``ltr`` console script: one entry point, one module per sub-command.

Every module in this package (other than ``__init__``) is a sub-command: it defines
``register(subparsers)`` and imports its heavy dependencies inside its ``run`` function, so
``ltr --help`` stays fast. Adding a file here adds a sub-command; ``FIRST`` orders ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from ltr import __version__
from ltr.errors import LtrError

# Sub-commands shown first in --help, in this order; any other module follows alphabetically.
FIRST = ("demo", "train", "evaluate")


def command_modules() -> list[str]:
    """Names of the sub-command modules in this package, in --help order."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltr",
        description="Learning-to-rank reranking: train, evaluate, serve, score; and the language "
        "models beside it: pretrain, generate, finetune, text-features.",
    )
    parser.add_argument("--version", action="version", version=f"ltr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in command_modules():
        importlib.import_module(f"{__name__}.{name}").register(sub)
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
    except BrokenPipeError:
        # The reader went away (`ltr info ... | head`): stop quietly, as other tools do. Python
        # flushes stdout again on exit, so point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


if __name__ == "__main__":
    sys.exit(main())

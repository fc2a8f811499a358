"""What the training commands (``train``, ``pretrain``, ``finetune``) share on the command line:
a config file with dotted overrides, ``--print-config``, ``--resume`` and ``--quiet``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


def add_training_arguments(p: argparse.ArgumentParser, configs: str) -> None:
    """Add the shared options; ``configs`` names where the presets live (for the help)."""
    p.add_argument("--config", type=Path, help=f"YAML config (see {configs})")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with an interrupted run in the same output_dir from its last complete epoch",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or model summary")


def load_config(args: argparse.Namespace, load: Callable[[Any, dict], C]) -> C | None:
    """The resolved config (``load(path, overrides)``), or ``None`` once printed for
    ``--print-config``."""
    import yaml

    from ltr.config import parse_overrides, to_dict

    config = load(args.config, parse_overrides(args.overrides))
    if args.print_config:
        print(yaml.safe_dump(to_dict(config), sort_keys=False))
        return None
    return config

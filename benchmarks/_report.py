"""Write a benchmark's results into its own section of docs/BENCHMARKS.md.

Each benchmark owns the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; running one
benchmark rewrites only its section, so results from different scripts (and machines) coexist.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "setrank_imsab.yaml"
"""The default SetRank configuration (what ``ltr demo`` trains); benchmarks measure its model."""

HEADER = """# Benchmarks

Every number here was measured by the script named in its section, with the command shown, on the
machine described. Speed comparisons are made side by side in one run (ratios to a baseline
measured in the same process), because the machines are shared and noisy. Re-run a section with
its command; the script rewrites only its own section.
"""


def machine_description() -> str:
    """One line describing where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    gpu = f"one {torch.cuda.get_device_name()} and an " if torch.cuda.is_available() else ""
    return (
        f"{gpu}{cpu}, {threads} torch threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def git_revision() -> str:
    """``git rev-parse --short HEAD`` (+dirty), or ``$LTR_BENCH_REVISION`` when set: a copy of
    the tree run elsewhere (a GPU machine) may carry a stale or no ``.git``."""
    if os.environ.get("LTR_BENCH_REVISION"):
        return os.environ["LTR_BENCH_REVISION"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line(module: str, argv: list[str] | None) -> str:
    """``python -m benchmarks.<module> ARGS`` as the run was started (``argv``; the process's
    own arguments when None), for a section's *Command* line."""
    args = argv if argv is not None else sys.argv[1:]
    return f"python -m benchmarks.{module} {' '.join(args)}".strip()


def write_section(
    name: str, title: str, command: str, body: str, path: Path = BENCHMARKS_MD
) -> None:
    """Replace (or append) the section ``name`` of the benchmarks file."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n"
        f"Command: `{command}`  \n"
        f"Measured {stamp} at revision `{git_revision()}` on: {machine_description()}.\n\n"
        f"{body.strip()}\n<!-- END {name} -->"
    )
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

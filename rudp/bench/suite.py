"""The whole suite: bulk, latency, connection rate, scale and lossy paths, one JSON and
one Markdown.

Used by ``rudp bench`` and ``benchmarks/run_all.py``.  Every measure's options
are accepted (see each one's ``--help``); ``--out-dir DIR`` writes
``DIR/latest.json`` and ``DIR/latest.md``, rewritten after each measure so that
an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from . import bulk, connrate, latency, lossy, scale
from .common import (
    Cell,
    Table,
    add_common_arguments,
    csv_of,
    machine_description,
    progress,
    resolve_common,
    results_document,
    write_outputs,
)

MEASURES: dict[str, ModuleType] = {
    "bulk": bulk,
    "latency": latency,
    "connrate": connrate,
    "scale": scale,
    "lossy": lossy,
}
TABLES: list[Table] = [
    bulk.TABLE,
    latency.TABLE,
    connrate.TABLE,
    scale.ECHO_TABLE,
    scale.IDLE_TABLE,
    lossy.TABLE,
]


def add_arguments(parser: argparse.ArgumentParser, default_out_dir: Path | None = None) -> None:
    """Every option of the suite, on ``parser`` (the script's or ``rudp bench``'s)."""
    add_common_arguments(parser)
    parser.add_argument(
        "--measures",
        type=csv_of(tuple(MEASURES)),
        default=list(MEASURES),
        help=f"measures to run, comma-separated (default {','.join(MEASURES)})",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=default_out_dir,
        help="write latest.json and latest.md here"
        + (f" (default {default_out_dir})" if default_out_dir else ""),
    )
    for module in MEASURES.values():
        module.add_arguments(parser)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the measures ``args`` asks for; print the Markdown; 0 if every figure
    has at least one run."""
    resolve_common(args)
    if args.out_dir is not None:
        args.json = args.json or args.out_dir / "latest.json"
        args.md = args.md or args.out_dir / "latest.md"
    meta = machine_description()
    cells: list[Cell] = []
    markdown = ""
    for name in args.measures:
        progress(args, f"--- {name}")
        cells += MEASURES[name].run(args)
        markdown = write_outputs(results_document(cells, meta, args), TABLES, args)
    sys.stdout.write(markdown)
    written = [str(path) for path in (args.json, args.md) if path is not None]
    if written:
        progress(args, f"wrote {' and '.join(written)}")
    return 0 if cells and all(cell.runs for cell in cells) else 1


def main(argv: Sequence[str] | None = None, default_out_dir: Path | None = None) -> int:
    summary, _, details = (__doc__ or "").partition("\n")
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description=summary,
        epilog=details.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, default_out_dir)
    return run_from_args(parser.parse_args(argv))

"""Smoke test of the lossy-path benchmark: ``benchmarks/lossy.py --quick`` runs,
reports a cell per variant and, with matplotlib installed, draws both figures.

Like tests/test_benchmarks_smoke.py, nothing here looks at a figure's value or
a clock: only at what was measured and how it is reported.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rudp.bench import lossy

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "lossy.py"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TIMEOUT = 240  # a safety net for a wedged run, far above the usual seconds
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One quick run on every loop (tcp and udp asked for, to be left out), with
    --plot when matplotlib is there."""
    out = tmp_path_factory.mktemp("lossy")
    argv = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--impls",
        "rudp,tcp,udp",
        "--json",
        str(out / "lossy.json"),
    ]
    if HAS_MATPLOTLIB:
        argv += ["--plot", str(out / "plots")]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    json_path = out / "lossy.json"
    yield {
        "status": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "document": json.loads(json_path.read_text()) if json_path.exists() else None,
        "plots": out / "plots",
    }


def test_quick_run_reports_a_cell_per_variant(finished: dict[str, Any]) -> None:
    assert finished["status"] == 0, finished["stderr"]
    document = finished["document"]
    assert document is not None, finished["stderr"]
    cells = document["results"]
    variants = ["0.1 % loss, 20 ms", "5 % loss, 20 ms", "10 MB/s, 20 ms"]
    loops = ["asyncio", "uvloop"] if importlib.util.find_spec("uvloop") else ["asyncio"]
    assert sorted((cell["variant"], cell["loop"]) for cell in cells) == sorted(
        (variant, loop) for variant in variants for loop in loops
    )
    for cell in cells:
        assert cell["measure"] == "lossy"
        assert cell["impl"] == "rudp"
        assert cell["errors"] == []
        metrics = cell["metrics"]
        for key in ("mb_per_s", "retransmitted_segments", "relay_dropped_to_server"):
            assert len(metrics[key]["runs"]) == 1
        assert metrics["mb_per_s"]["median"] > 0
        assert metrics["relay_socket_overflows"]["median"] == 0
    by_variant = {cell["variant"]: cell for cell in cells}
    assert by_variant["10 MB/s, 20 ms"]["params"]["rate"] == 10e6
    assert by_variant["5 % loss, 20 ms"]["params"]["loss"] == 0.05
    assert "## Lossy paths" in finished["stdout"]
    assert "tcp left out" in finished["stderr"] and "udp left out" in finished["stderr"]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_plot_writes_both_figures(finished: dict[str, Any]) -> None:
    assert finished["status"] == 0, finished["stderr"]
    for name in ("goodput_vs_loss.png", "cwnd_srtt.png"):
        path = finished["plots"] / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
    samples = json.loads((finished["plots"] / "cwnd_srtt.json").read_text())
    assert len(samples["t"]) == len(samples["cwnd"]) == len(samples["srtt"]) > 0


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from rudp.bench import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit, match=r"rudp\[plot\]"):
        plots.require_matplotlib()


def _args(*argv: str) -> Any:
    import argparse

    from rudp.bench.common import add_common_arguments

    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    lossy.add_arguments(parser)
    return parser.parse_args(argv)


def test_variant_sizes_shrink_with_loss() -> None:
    sizes = {variant.name: variant.size for variant in lossy.variants(_args())}
    mib = 1024 * 1024
    assert sizes == {
        "0.1 % loss, 20 ms": 8 * mib,
        "1 % loss, 20 ms": 2 * mib,
        "5 % loss, 20 ms": 1 * mib,
        "10 MB/s, 20 ms": 8 * mib,
    }
    quick = {variant.name: variant.size for variant in lossy.variants(_args("--quick"))}
    names = ["0.1 % loss, 20 ms", "5 % loss, 20 ms", "10 MB/s, 20 ms"]
    assert quick == dict.fromkeys(names, 256 * 1024)
    chosen = lossy.variants(_args("--loss-rates", "2", "--lossy-size", "1MiB"))
    assert [(variant.loss, variant.size) for variant in chosen] == [(0.02, mib // 4), (0.0, mib)]


def test_the_bottleneck_queues_one_bandwidth_delay_product() -> None:
    variant = lossy.variants(_args("--quick"))[-1]
    impairment = variant.impairment()
    assert impairment.rate == 10e6
    assert impairment.queue_limit == 400_000
    assert impairment.delay == 0.02

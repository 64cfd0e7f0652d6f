"""Smoke test of the benchmark suite: every script runs at a tiny size and writes
JSON of the documented shape.

The scripts run at once, in parallel, each with ``--quick`` and sizes smaller
still; nothing here looks at a figure or a clock (CI machines are small and
shared), only at what was measured and how it is reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
IMPLS = ["rudp", "tcp", "udp"]  # aioquic is optional: the bench extra
TINY = ["--quick", "--runs", "1", "--impls", ",".join(IMPLS), "--quiet"]

SCRIPTS: dict[str, list[str]] = {
    "bulk": [
        str(BENCHMARKS / "bulk.py"),
        "--bulk-size",
        "128KiB",
        "--datagram-sizes",
        "default,mtu",
    ],
    "latency": [str(BENCHMARKS / "latency.py"), "--round-trips", "20"],
    "connrate": [str(BENCHMARKS / "connrate.py"), "--connections", "5"],
    "scale": [
        str(BENCHMARKS / "scale.py"),
        "--clients",
        "4",
        "--echo-rounds",
        "2",
        "--idle-connections",
        "20",
    ],
    "rudp bench": [
        "-m",
        "rudp",
        "bench",
        "--measures",
        "connrate",
        "--connections",
        "3",
        "--loops",
        "asyncio",
    ],
}
EXPECTED_METRICS = {
    "bulk": {"mb_per_s", "client_cpu_s", "server_cpu_s"},
    "latency": {"p50_us", "p99_us", "mean_us"},
    "connrate": {"conn_per_s", "client_cpu_ms_per_conn"},
    "scale-echo": {"rt_per_s", "p50_ms", "p99_ms", "connect_s"},
    "scale-idle": {"kib_per_conn", "server_rss_mib", "connect_s"},
}
TIMEOUT = 240  # a safety net for a wedged run, far above the usual few seconds


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run every script at once; yield name -> (exit status, output, JSON or None,
    path of the JSON)."""
    out = tmp_path_factory.mktemp("bench")
    running = {}
    for name, argv in SCRIPTS.items():
        target = out / name.replace(" ", "_")
        where = ["--out-dir", str(target)] if name == "rudp bench" else ["--json", str(target)]
        running[name] = (
            subprocess.Popen(
                [sys.executable, *argv, *TINY, *where],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
            target / "latest.json" if name == "rudp bench" else target,
        )
    results: dict[str, Any] = {}
    for name, (process, json_path) in running.items():
        try:
            output, _ = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        document = json.loads(json_path.read_text()) if json_path.exists() else None
        results[name] = (process.returncode, output, document, json_path)
    yield results


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_script_runs_and_reports_every_cell(finished: dict[str, Any], name: str) -> None:
    status, output, document, _ = finished[name]
    assert status == 0, output
    assert document is not None, output
    meta = document["meta"]
    for key in ("nproc", "python", "uvloop", "rudp", "runs", "started"):
        assert key in meta
    assert meta["runs"] == 1
    results = document["results"]
    assert results
    for cell in results:
        assert set(cell) == {"measure", "variant", "loop", "impl", "params", "metrics", "errors"}
        assert cell["errors"] == []
        assert EXPECTED_METRICS[cell["measure"]] <= set(cell["metrics"])
        for summary in cell["metrics"].values():
            assert set(summary) == {"median", "min", "max", "runs"}
            assert summary["min"] <= summary["median"] <= summary["max"]
            assert len(summary["runs"]) == 1
    assert "| variant | loop | implementation |" in output


def test_every_implementation_and_loop_is_measured(finished: dict[str, Any]) -> None:
    _, _, document, _ = finished["latency"]
    cells = {(cell["loop"], cell["impl"]) for cell in document["results"]}
    loops = ["asyncio", "uvloop"] if _has_uvloop() else ["asyncio"]
    assert cells == {(loop, impl) for loop in loops for impl in IMPLS}


def test_bulk_runs_each_datagram_size(finished: dict[str, Any]) -> None:
    _, _, document, _ = finished["bulk"]
    variants = {cell["variant"] for cell in document["results"]}
    assert len(variants) == 2
    assert any("path MTU" in variant for variant in variants)


def test_scale_reports_echo_and_idle_without_udp_idle(finished: dict[str, Any]) -> None:
    _, _, document, _ = finished["scale"]
    measures = {(cell["measure"], cell["impl"]) for cell in document["results"]}
    assert ("scale-echo", "udp") in measures
    assert ("scale-idle", "rudp") in measures
    assert ("scale-idle", "udp") not in measures


def test_rudp_bench_writes_latest_json_and_markdown(finished: dict[str, Any]) -> None:
    status, output, document, json_path = finished["rudp bench"]
    assert status == 0, output
    assert json_path.name == "latest.json"
    assert "## Connection rate" in (json_path.parent / "latest.md").read_text()
    assert {cell["measure"] for cell in document["results"]} == {"connrate"}


@pytest.mark.parametrize(
    "script", ["bulk.py", "latency.py", "connrate.py", "scale.py", "run_all.py"]
)
def test_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--runs" in done.stdout


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def test_sizes_read_as_bytes() -> None:
    from rudp.bench.common import parse_size

    assert parse_size("65536") == 65536
    assert parse_size("64KiB") == 64 * 1024
    assert parse_size("16MiB") == 16 * 1024 * 1024
    assert parse_size("1MB") == 1_000_000


def test_summary_and_percentiles() -> None:
    from rudp.bench.common import percentile, summarize

    assert summarize([3.0, 1.0, 2.0, 10.0]) == {
        "median": 2.5,
        "min": 1.0,
        "max": 10.0,
        "runs": [3.0, 1.0, 2.0, 10.0],
    }
    ordered = [float(value) for value in range(1, 101)]
    assert percentile(ordered, 0.5) == 50.0
    assert percentile(ordered, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_markdown_ratios_compare_with_tcp_and_udp_on_the_same_loop() -> None:
    from rudp.bench.common import Cell, Metric, Table, render_markdown

    def cell(impl: str, loop: str, value: float) -> dict[str, Any]:
        made = Cell("m", "v", loop, impl, runs=[{"x": value}])
        return made.to_json()

    document = {
        "meta": {"runs": 1},
        "results": [
            cell("rudp", "asyncio", 10.0),
            cell("tcp", "asyncio", 40.0),
            cell("udp", "asyncio", 20.0),
            cell("tcp", "uvloop", 1.0),
        ],
    }
    table = Table("m", "M", "note", (Metric("x", "x", 1, headline=True),))
    rows = [line for line in render_markdown(document, [table]).splitlines() if "| v |" in line]
    assert rows[0].endswith("| 0.25 | 0.50 |")
    assert rows[1].endswith("| 1 | 2.00 |")

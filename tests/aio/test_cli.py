"""``python -m rudp``: the demo, and clear failures with a non-zero exit status."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20


def _rudp(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "rudp", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_demo_prints_handshake_echo_and_close() -> None:
    result = _rudp("demo", "--message", "ping over rudp")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "SYN-SENT -> ESTABLISHED" in out
    assert "SYN-RECEIVED -> ESTABLISHED" in out
    assert "client received the echo 'ping over rudp'" in out
    assert "FIN-WAIT-1" in out and "LAST-ACK -> CLOSED" in out
    assert out.index("SYN-SENT -> ESTABLISHED") < out.index("client received the echo")
    assert out.index("client received the echo") < out.index("LAST-ACK -> CLOSED")


def test_echo_server_on_a_busy_port_fails_with_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = _rudp("echo-server", "--port", str(port))
    assert result.returncode == 1
    assert (
        result.stderr == f"rudp: error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )


def test_echo_client_refused_and_timed_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = _rudp("echo-client", "--port", str(port), "--timeout", "0.3")
    assert result.returncode == 1
    assert result.stderr.endswith("no answer within 0.3 s\n")
    result = _rudp("echo-client", "--port", str(port))  # nothing bound there now
    assert result.returncode == 1
    assert result.stderr.endswith(": connection refused\n")


def test_echo_server_and_client_talk() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "rudp", "echo-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            match = re.fullmatch(r"rudp echo server listening on 127\.0\.0\.1:(\d+)\n", line)
            assert match, line
            result = _rudp("echo-client", "--port", match[1], "--message", "echo me")
            assert result.returncode == 0, result.stderr
            assert result.stdout == "echo me\n"
        finally:
            server.terminate()


def test_help_everywhere() -> None:
    for command in ([], ["demo"], ["echo-server"], ["echo-client"], ["send"], ["recv"], ["bench"]):
        result = _rudp(*command, "--help")
        assert result.returncode == 0
        assert "exit status" in result.stdout
    assert _rudp("no-such-command").returncode == 2

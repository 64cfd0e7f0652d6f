"""Every script in examples/ runs, exits 0 and prints what its docstring promises.

Scripts that run alone are run once each; server/client pairs get the server on
an ephemeral port (``--port 0``) and the client pointed at it.  A new example
must be added to a table here, or ``test_every_example_is_run`` fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 30
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

HAVE_CERT_TOOL = bool(shutil.which("openssl") or importlib.util.find_spec("cryptography"))
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

# script -> (arguments, texts that lines of its output must contain)
ALONE: dict[str, tuple[list[str], list[str]]] = {
    "echo_protocol.py": (
        ["--message", "ping"],
        [
            "Client: data sent: 'ping'",
            "Server: data received: 'ping'",
            "Client: data received: 'ping'",
            "Client: the server closed the connection",
        ],
    ),
    "chat.py": (
        ["--demo"],
        [
            "[alice] * carol joined",
            "[carol] alice: Hello, everyone!",
            "[alice] bob: Hi alice.",
            "[bob] carol: Hello over TCP over UDP.",
            "[carol] * bob left",
            "demo done",
        ],
    ),
    "file_transfer.py": (
        ["--size", "300000"],
        ["receiver says OK", "the file arrived intact"],
    ),
    "ported_from_asyncio.py": (
        [],
        ["GET greeting             -> hello world", "GET greeting             -> (nil)"],
    ),
    "tls_echo.py": (
        [],
        ["echoed: b'Hello over TLS\\n'", "upgraded: TLSv1.3", "echoed:  b'now encrypted\\n'"],
    ),
}
# Run as server and client by the tests below.
PAIRED = {"echo_server.py", "echo_client.py"}


def _python(script: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-u", str(EXAMPLES / script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=ENV,
        cwd=EXAMPLES,
    )


@contextmanager
def _server(script: str, *args: str, ready: str) -> Iterator[tuple[int, list[str]]]:
    """Start ``script`` as a server; give its port (the ``ready`` pattern's group)
    and, once the block ends and the server is stopped, the rest of its output."""
    process = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        cwd=EXAMPLES,
    )
    rest: list[str] = []
    try:
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        assert readable, f"{script} printed nothing"
        line = process.stdout.readline()
        match = re.fullmatch(ready, line.rstrip("\n"))
        assert match, line
        yield int(match[1]), rest
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=TIMEOUT)
        rest.extend(output.splitlines())


def test_every_example_is_run() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(ALONE) | PAIRED


@pytest.mark.parametrize("script", sorted(ALONE))
def test_example_runs_alone(script: str) -> None:
    if script == "tls_echo.py" and not HAVE_CERT_TOOL:
        pytest.skip("needs the openssl command or the cryptography package")
    args, expected = ALONE[script]
    result = _python(script, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    for text in expected:
        assert any(text in line for line in lines), (text, result.stdout)


@pytest.mark.skipif(not (HAVE_CERT_TOOL and HAVE_UVLOOP), reason="needs uvloop and openssl")
def test_tls_echo_on_uvloop() -> None:
    result = _python("tls_echo.py", "--uvloop")
    assert result.returncode == 0, result.stderr
    assert "loop: uvloop" in result.stdout
    assert "upgraded: TLSv1.3" in result.stdout


def test_ported_example_prints_the_same_on_asyncio() -> None:
    """The docstring's claim: with asyncio's import back, kernel TCP gives the same run."""
    source = (EXAMPLES / "ported_from_asyncio.py").read_text()
    ported = re.compile(r"^from rudp import (.*)$", re.MULTILINE)
    assert len(ported.findall(source)) == 1 and "import rudp" not in source
    original = ported.sub(r"from asyncio import \1", source)
    on_kernel_tcp = subprocess.run(
        [sys.executable, "-"],
        input=original,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=ENV,
    )
    on_rudp = _python("ported_from_asyncio.py")
    assert on_kernel_tcp.returncode == 0 and on_kernel_tcp.stderr == ""
    assert on_rudp.stdout == on_kernel_tcp.stdout


def test_echo_server_and_client() -> None:
    ready = r"Serving on \('127\.0\.0\.1', (\d+)\)"
    with _server("echo_server.py", "--port", "0", ready=ready) as (port, server_output):
        result = _python("echo_client.py", "--port", str(port))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Send: 'Hello World!'",
        "Received: 'Hello World!'",
        "Close the connection",
    ]
    assert server_output[0].startswith("Received 'Hello World!' from ('127.0.0.1', ")
    assert server_output[1:3] == ["Send: 'Hello World!'", "Close the connection"]


def test_chat_server_and_client() -> None:
    ready = r"chat server on 127\.0\.0\.1:(\d+)"
    with _server("chat.py", "server", "--port", "0", ready=ready) as (port, _):
        result = _python(
            "chat.py", "client", "--port", str(port), "--name", "tester", stdin="hello\nbye\n"
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["* tester joined", "tester: hello", "tester: bye"]

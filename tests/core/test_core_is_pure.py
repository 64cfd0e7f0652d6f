"""rudp.core is sans-IO: it never imports asyncio, socket, time or uvloop (DESIGN.md)."""

import ast
from pathlib import Path

import pytest

import rudp.core

FORBIDDEN = frozenset({"asyncio", "socket", "time", "uvloop"})
CORE_DIR = Path(rudp.core.__file__).parent


def forbidden_imports(source: str, filename: str = "<string>") -> list[str]:
    """``file:line module`` for every import of a forbidden module or submodule."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if module.split(".")[0] in FORBIDDEN:
                found.append(f"{filename}:{node.lineno} {module}")
    return found


def core_sources() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


def test_core_sources_found() -> None:
    names = {path.name for path in core_sources()}
    assert "__init__.py" in names


@pytest.mark.parametrize("path", core_sources(), ids=lambda p: str(p.relative_to(CORE_DIR)))
def test_core_module_imports_no_io(path: Path) -> None:
    assert forbidden_imports(path.read_text(), str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import time as t",
        "import os, socket",
        "import asyncio.events",
        "from asyncio import Future",
        "from time import monotonic",
        "from uvloop import Loop",
        "def f():\n    import socket\n",
        "try:\n    import uvloop\nexcept ImportError:\n    pass\n",
        "if TYPE_CHECKING:\n    from asyncio.transports import Transport\n",
    ],
)
def test_checker_catches_forbidden_import(source: str) -> None:
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import timeit",
        "import enum, struct",
        "from . import time",  # a sibling module of ours, not the stdlib
        "from rudp.core import seq",
        "from dataclasses import dataclass",
    ],
)
def test_checker_allows_other_imports(source: str) -> None:
    assert forbidden_imports(source) == []

"""Shared fixtures: every asyncio test runs on the default loop and on uvloop, and
fails if anything reached the loop's exception handler (as uvloop's own suite does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on CPython/POSIX
    uvloop = None

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# What reached the exception handler of the loops of the test running now.
_loop_errors: list[dict[str, Any]] = []


def _record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    _loop_errors.append(context)
    loop.default_exception_handler(context)


def _recording(factory: LoopFactory) -> LoopFactory:
    def make_loop() -> asyncio.AbstractEventLoop:
        loop = factory()
        loop.set_exception_handler(_record)
        return loop

    return make_loop


LOOP_FACTORIES: dict[str, LoopFactory] = {"asyncio": _recording(asyncio.new_event_loop)}
if uvloop is not None:
    LOOP_FACTORIES["uvloop"] = _recording(uvloop.new_event_loop)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    return LOOP_FACTORIES


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _loop_errors.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # After every fixture's teardown, so errors raised while the loop shuts down count.
    result = yield
    errors = list(_loop_errors)
    _loop_errors.clear()
    if errors:
        described = "; ".join(f"{e.get('message')!r}: {e.get('exception')!r}" for e in errors)
        pytest.fail(f"the loop's exception handler was called: {described}", pytrace=False)
    return result


@pytest.fixture
def loop_errors() -> list[dict[str, Any]]:
    """The exception-handler calls so far; a test that expects some clears the list."""
    return _loop_errors

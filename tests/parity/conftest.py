"""Fixtures of the parity suite: every test runs on kernel TCP and on rudp.

The loops come from ``tests/conftest.py``: its ``pytest_asyncio_loop_factories``
hook runs every test on the default loop and on uvloop, and its teardown hook fails
a test if anything reached the loop's exception handler.  Here the ``stack``
fixture adds the second axis, so each test has four variants, named
``[asyncio-tcp]``, ``[asyncio-rudp]``, ``[uvloop-tcp]`` and ``[uvloop-rudp]``.

A test proves itself right on kernel TCP.  Where rudp departs from it, the test
carries ``@pytest.mark.rudp_bug("...")``: its rudp variants become strict xfails
(``loop="uvloop"`` or ``loop="asyncio"`` narrows that to one loop), so fixing the
bug turns them into failures until the mark goes.
"""

from __future__ import annotations

import pytest

from tests.parity.parity_support import Stack

STACKS = ("tcp", "rudp")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rudp_bug(reason, loop=None): a known rudp departure from kernel TCP; "
        "the rudp variants are strict xfails",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("rudp_bug")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or callspec.params.get("stack") != "rudp":
            continue
        loop = marker.kwargs.get("loop")
        if loop is not None and loop not in callspec.id.split("-"):
            continue
        reason = marker.args[0] if marker.args else marker.kwargs["reason"]
        item.add_marker(pytest.mark.xfail(strict=True, reason=f"rudp bug: {reason}"))


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> Stack:
    """asyncio's TCP entry points on kernel TCP, then on rudp: a test must pass on both."""
    return Stack(request.param)

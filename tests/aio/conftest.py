"""Fixtures of the asyncio tests; the helpers they use are in aio_support.py."""

from __future__ import annotations

import pytest

from tests.aio.aio_support import Stack


@pytest.fixture(params=["tcp", "rudp"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Kernel TCP through asyncio, then rudp: the test must pass on both."""
    return Stack(request.param)


@pytest.fixture
def rudp_stack() -> Stack:
    return Stack("rudp")

"""Server: the object create_server returns, mirroring asyncio.Server.

Its endpoints (one UDP socket per bound address) accept connections while it
serves.  ``close()`` stops accepting — new SYNs are answered with RST, handshakes
in progress are reset — and leaves established connections alone, as asyncio
does; ``wait_closed()`` returns once the server is closed and every connection it
accepted has called ``connection_lost`` (the semantics of Python 3.12.1+, where
3.11's returns too early).  Each socket is closed once its connections are done
with it (see ``endpoint``).  ``stats()`` adds up the counters of all its sockets;
a connection's transport gives its own socket's as
``get_extra_info("rudp_endpoint_stats")``.
"""

from __future__ import annotations

import asyncio
import functools
import operator
from typing import Any

from ..observe.stats import EndpointStats
from .endpoint import Endpoint


class Server(asyncio.AbstractServer):
    """Listening rudp endpoints; use it as ``async with`` or call ``close()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._endpoints: list[Endpoint] | None = []
        self._all_endpoints: list[Endpoint] = []  # kept after close(), for stats()
        self._active_count = 0
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    def _add_endpoint(self, endpoint: Endpoint) -> None:
        assert self._endpoints is not None
        self._endpoints.append(endpoint)
        self._all_endpoints.append(endpoint)

    def _attach(self) -> None:
        self._active_count += 1

    def _detach(self) -> None:
        assert self._active_count > 0
        self._active_count -= 1
        if self._active_count == 0 and self._endpoints is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _start_serving(self) -> None:
        if self._serving or self._endpoints is None:
            return
        self._serving = True
        for endpoint in self._endpoints:
            endpoint.start_accepting()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The UDP sockets the server listens on (empty once closed)."""
        if self._endpoints is None:
            return ()
        return tuple(endpoint.socket for endpoint in self._endpoints)

    def stats(self) -> EndpointStats:
        """The counters of all the server's sockets added up (a snapshot); they
        keep counting after ``close()`` while connections remain."""
        return functools.reduce(
            operator.add, (endpoint.stats for endpoint in self._all_endpoints), EndpointStats()
        )

    def close(self) -> None:
        endpoints = self._endpoints
        if endpoints is None:
            return
        self._endpoints = None
        for endpoint in endpoints:
            endpoint.stop_accepting()
            endpoint.finish()
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._endpoints is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

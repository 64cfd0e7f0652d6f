"""create_connection and create_server: asyncio's TCP calls, on rudp.

They take every keyword of the loop's methods, with the same meaning, the socket
underneath being UDP: a client gets a UDP socket of its own, connected to the
server's address; a server's socket (one per bound address) carries all its
connections; ``sock=`` hands over such a socket.  Host names are resolved as
asyncio resolves them (an IP literal without ``getaddrinfo``, which runs in a
thread), and a client tries the addresses in turn, or races them with asyncio's
Happy Eyeballs (``happy_eyeballs_delay``, ``interleave``), raising what asyncio
raises when none answers.  ``ssl=`` puts asyncio's own TLS layer over the
connection on any loop (see ``tls``).

Each attempt is a full handshake on its own socket, all of them feeding one
protocol.  The first to complete takes it; any other completing after it is reset,
and every loser's socket is closed, so the protocol sees exactly one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
from asyncio import staggered
from collections.abc import Callable, Iterable, Sequence
from ssl import SSLContext, SSLSocket
from typing import Any, TypeVar

from ..core.config import Config
from . import tls, udpio
from .endpoint import CLIENT_SOCKET_BUFFER, SERVER_SOCKET_BUFFER, Endpoint, udp_socket
from .server import Server
from .transport import RudpTransport

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)
# (family, type, proto, canonname, sockaddr), as getaddrinfo returns them.
_AddrInfo = tuple[int, int, int, str, Any]

__all__ = ["create_connection", "create_server"]

# The settings of a call that passes none (immutable, so one object serves all).
_DEFAULT_CONFIG = Config()
# _numeric_info's answers by its arguments: a client opens its connections to
# the same few addresses, and each answer costs up to two inet_pton calls.
_numeric_infos: dict[tuple[Any, ...], _AddrInfo | None] = {}
_NUMERIC_INFOS_MAX = 256
_KEY_TYPES = (int, str, type(None))


async def create_connection(
    protocol_factory: Callable[[], _ProtocolT],
    host: str | None = None,
    port: int | None = None,
    *,
    ssl: SSLContext | bool | None = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: socket.socket | None = None,
    local_addr: tuple[str, int] | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    happy_eyeballs_delay: float | None = None,
    interleave: int | None = None,
    config: Config | None = None,
) -> tuple[asyncio.Transport, _ProtocolT]:
    """Open a connection to ``host:port``; returns once the handshake is complete
    and ``connection_made`` has been called.  Fails with ConnectionRefusedError
    (RST or ICMP port unreachable) or TimeoutError (no answer to ``syn_retries``
    SYNs), as kernel TCP does.

    As ``loop.create_connection``: ``family``, ``proto`` and ``flags`` go to
    ``getaddrinfo`` (for a UDP socket: ``proto`` 0 or ``IPPROTO_UDP``, and
    ``IPPROTO_TCP``, the protocol rudp speaks, means the UDP that carries it);
    ``local_addr`` is bound first.  The addresses are tried in turn, or, with
    ``happy_eyeballs_delay``, a new attempt starts every that many seconds (or as
    soon as the previous one fails) and the first handshake to complete wins, the
    others being reset and their sockets closed; ``interleave`` (1 with Happy
    Eyeballs) alternates the address families.  ``protocol_factory`` is called
    once, before the first attempt, and only the winner reaches that protocol.
    ``sock`` is a UDP socket already connected to the server (no ``host`` or
    ``port`` then), which the connection owns from now on.

    With ``ssl`` (an SSLContext, or True for ``ssl.create_default_context()``) the
    TLS handshake is part of it too, and fails as asyncio's does (e.g.
    ``ssl.SSLCertVerificationError``; ConnectionAbortedError after
    ``ssl_handshake_timeout`` seconds, 60 by default); ``server_hostname`` is
    checked against the certificate (``host`` by default, ``""`` for no check)."""
    loop = asyncio.get_running_loop()
    config = config or _DEFAULT_CONFIG
    server_hostname = tls.check_client_args(
        host, ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    if sock is not None:
        _check_not_ssl_socket(sock)
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1  # as asyncio: Happy Eyeballs alternates families by default
    infos: list[_AddrInfo] = []
    local_infos = None
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        proto = _carrier_proto(proto)
        infos = _literal_info((host, port), family, proto) or await _resolve(
            loop, (host, port), family, proto, flags
        )
        if local_addr is not None:
            local_infos = await _resolve(loop, local_addr, family, proto, flags)
        if interleave:
            infos = _interleave(infos, interleave)
    elif sock is None:
        raise ValueError("host and port was not specified and no sock specified")
    else:
        _check_client_socket(sock)

    app_protocol = protocol_factory()
    protocol: asyncio.BaseProtocol = app_protocol
    if ssl:
        handshake: asyncio.Future[None] = loop.create_future()
        protocol = tls_protocol = tls.client_protocol(
            loop,
            app_protocol,
            ssl,
            server_hostname,
            handshake,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
    race = _Race(protocol)
    try:
        if sock is not None:
            transport = await _handshake(loop, race, sock, config)
        else:
            transport = await _connect_any(
                loop, race, infos, local_infos, happy_eyeballs_delay, config
            )
    except BaseException:
        race.abandon()  # cancelled with a winner the caller will never see
        raise
    if ssl:
        return await tls.finish_client_handshake(tls_protocol, handshake), app_protocol
    return transport, app_protocol


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: SSLContext | None = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    config: Config | None = None,
) -> Server:
    """Listen on ``host:port`` (every interface when ``host`` is None or "", each
    host of a sequence) with one UDP socket per address, or on ``sock``, a bound
    UDP socket the server owns from now on (no ``host`` or ``port`` then; an
    unbound one gets an ephemeral port on every interface, as ``listen()`` does).

    As ``loop.create_server``: ``family`` and ``flags`` go to ``getaddrinfo``, and
    ``reuse_port`` sets SO_REUSEPORT.  ``reuse_address=True`` sets SO_REUSEADDR,
    which on UDP lets any socket that sets it too bind the same address -- Linux
    then gives unicast datagrams to the newest -- where on TCP it never lets a
    second listener in.  So rudp leaves it off by default (asyncio's default is on,
    for TCP's TIME-WAIT), and a port in use fails with EADDRINUSE as on TCP.

    With ``ssl`` (an SSLContext) each connection's protocol is told of it
    (``connection_made``) once the TLS handshake is done; a connection whose
    handshake fails or outlasts ``ssl_handshake_timeout`` is reset, unreported,
    as asyncio does."""
    loop = asyncio.get_running_loop()
    config = config or _DEFAULT_CONFIG
    tls.check_server_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        _check_not_ssl_socket(sock)
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sockets = await _bind_all(loop, host, port, family, flags, reuse_address, reuse_port)
    elif sock is None:
        raise ValueError("Neither host/port nor sock were specified")
    else:
        _check_server_socket(sock)
        sockets = [sock]
    if ssl is not None:
        protocol_factory = tls.server_protocol_factory(
            loop, protocol_factory, ssl, ssl_handshake_timeout, ssl_shutdown_timeout
        )
    server = Server(loop)
    try:
        while sockets:
            _, endpoint = await udpio.create_datagram_endpoint(
                loop,
                lambda: Endpoint(
                    loop, config, backlog=backlog, server=server, protocol_factory=protocol_factory
                ),
                sockets[0],
            )
            sockets.pop(0)
            server._add_endpoint(endpoint)
    except BaseException:
        for each in sockets:
            each.close()
        for endpoint in server._endpoints or ():
            endpoint.close()
        raise
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)
    return server


# ------------------------------------------------------------------ clients
class _Race:
    """The attempts of one create_connection and the protocol they compete for."""

    def __init__(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol
        self.winner: RudpTransport | None = None
        self.winner_endpoint: Endpoint | None = None

    def abandon(self) -> None:
        """Close the winner's socket: create_connection failed after all."""
        if self.winner_endpoint is not None:
            self.winner_endpoint.close()


class _Claim(asyncio.Protocol):
    """An attempt's protocol until its handshake completes: the first to complete
    hands its transport the race's protocol; a later one resets its connection."""

    def __init__(self, race: _Race) -> None:
        self._race = race

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        race = self._race
        assert isinstance(transport, RudpTransport)
        if race.winner is not None:
            transport.abort()
            return
        race.winner = transport
        # Nothing was delivered yet: the protocol gets the connection from its start.
        transport.set_protocol(race.protocol)
        race.protocol.connection_made(transport)


async def _connect_any(
    loop: asyncio.AbstractEventLoop,
    race: _Race,
    infos: list[_AddrInfo],
    local_infos: list[_AddrInfo] | None,
    happy_eyeballs_delay: float | None,
    config: Config,
) -> RudpTransport:
    """Each address in turn, or raced (Happy Eyeballs, RFC 8305 5), until a
    handshake completes; else asyncio's error for all of them."""
    errors: list[list[OSError]] = []
    if happy_eyeballs_delay is None:
        for info in infos:
            try:
                return await _connect_to(loop, race, info, local_infos, config, errors)
            except OSError:
                pass  # the next address; when none is left, the error below
    else:
        attempts = [
            functools.partial(_connect_to, loop, race, info, local_infos, config, errors)
            for info in infos
        ]
        winner, _, failures = await staggered.staggered_race(attempts, happy_eyeballs_delay)
        if winner is not None:
            return winner  # type: ignore[no-any-return]
        for failure in failures:
            if failure is not None and not isinstance(failure, OSError):
                raise failure
    raise _one_error([exc for attempt_errors in errors for exc in attempt_errors])


async def _connect_to(
    loop: asyncio.AbstractEventLoop,
    race: _Race,
    info: _AddrInfo,
    local_infos: list[_AddrInfo] | None,
    config: Config,
    errors: list[list[OSError]],
) -> RudpTransport:
    """One attempt, as asyncio's ``_connect_sock``: a socket bound to the first
    ``local_infos`` address of the family that binds, connected to ``info``'s."""
    mine: list[OSError] = []
    errors.append(mine)
    family, _, _, _, address = info
    sock = udp_socket(family, CLIENT_SOCKET_BUFFER)
    try:
        if local_infos is not None:
            for local_family, _, _, _, local in local_infos:
                if local_family != family:
                    continue
                try:
                    _bind(sock, local)
                    break
                except OSError as exc:
                    mine.append(exc)
            else:
                if mine:
                    raise mine.pop()
                raise OSError(f"no matching local address with {family=} found")
        sock.connect(address)  # a UDP connect: no packet, just the default peer
    except OSError as exc:
        mine.append(exc)
        sock.close()
        raise
    except BaseException:
        sock.close()
        raise
    try:
        return await _handshake(loop, race, sock, config)
    except OSError as exc:
        mine.append(exc)
        raise


async def _handshake(
    loop: asyncio.AbstractEventLoop, race: _Race, sock: socket.socket, config: Config
) -> RudpTransport:
    """An active open on ``sock`` (connected to the peer), which it owns."""
    try:
        endpoint = Endpoint(loop, config)
        # At once, not in a later loop pass: the SYN leaves before this returns.
        udpio.open_datagram_endpoint(loop, endpoint, sock)
    except BaseException:
        sock.close()
        raise
    try:
        waiter: asyncio.Future[None] = loop.create_future()
        transport = endpoint.open_connection(_Claim(race), waiter)
        await waiter
    except BaseException:
        endpoint.close()  # a loser, or cancelled: resets what the handshake left open
        raise
    if race.winner is not transport:
        endpoint.close()  # completed after the winner: _Claim reset it
        raise ConnectionAbortedError("another address completed its handshake first")
    race.winner_endpoint = endpoint
    return transport


def _check_client_socket(sock: socket.socket) -> None:
    if sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP socket was expected, got {sock!r}")
    try:
        sock.getpeername()
    except OSError:
        raise ValueError(
            f"A UDP socket connected to the server was expected, got {sock!r}"
        ) from None
    sock.setblocking(False)
    _grow_buffers(sock, CLIENT_SOCKET_BUFFER)


def _interleave(infos: list[_AddrInfo], first_family_count: int) -> list[_AddrInfo]:
    """Alternate the address families, the first taking ``first_family_count``
    turns to begin with (asyncio's ``_interleave_addrinfos``; RFC 8305 4)."""
    by_family: dict[int, list[_AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())
    reordered: list[_AddrInfo] = []
    if groups and first_family_count > 1:
        reordered.extend(groups[0][: first_family_count - 1])
        del groups[0][: first_family_count - 1]
    for turn in itertools.zip_longest(*groups):
        reordered.extend(info for info in turn if info is not None)
    return reordered


# ------------------------------------------------------------------ servers
async def _bind_all(
    loop: asyncio.AbstractEventLoop,
    host: str | Sequence[str] | None,
    port: int | None,
    family: int,
    flags: int,
    reuse_address: bool | None,
    reuse_port: bool | None,
) -> list[socket.socket]:
    """One bound UDP socket per address of every host, as asyncio binds its
    listening sockets (IPv6 ones IPv6-only)."""
    hosts: Iterable[str | None]
    if host == "":
        hosts = [None]
    elif isinstance(host, str) or host is None:
        hosts = [host]
    else:
        hosts = host
    resolved = await asyncio.gather(
        *(
            _resolve(loop, (each, port), family, 0, flags, empty=f"getaddrinfo({each!r})")
            for each in hosts
        )
    )
    infos = dict.fromkeys(itertools.chain.from_iterable(resolved))
    sockets: list[socket.socket] = []
    try:
        for af, _, _, _, address in infos:
            sock = udp_socket(af, SERVER_SOCKET_BUFFER)
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                _set_reuse_port(sock)
            if af == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            _bind(sock, address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _check_server_socket(sock: socket.socket) -> None:
    if sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP socket was expected, got {sock!r}")
    try:
        sock.getpeername()
    except OSError:
        pass  # not connected, as a listening socket must be
    else:
        raise ValueError(f"A UDP socket not connected to a peer was expected, got {sock!r}")
    sockname = sock.getsockname()
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sockname[1] == 0:
        sock.bind(("", 0))  # as listen() on an unbound TCP socket
    sock.setblocking(False)
    _grow_buffers(sock, SERVER_SOCKET_BUFFER)


def _set_reuse_port(sock: socket.socket) -> None:
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(
            "reuse_port not supported by socket module, SO_REUSEPORT defined but not implemented."
        ) from None


# ------------------------------------------------------------------- shared
async def _resolve(
    loop: asyncio.AbstractEventLoop,
    address: tuple[Any, ...],
    family: int,
    proto: int,
    flags: int,
    *,
    empty: str = "getaddrinfo()",
) -> list[_AddrInfo]:
    """``address``'s UDP addresses: an IP literal as it is, else ``getaddrinfo``'s."""
    literal = _literal_info(address, family, proto)
    if literal is not None:
        return literal
    host, port = address[:2]
    infos = await loop.getaddrinfo(
        host, port, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
    )
    if not infos:
        raise OSError(f"{empty} returned empty list")
    return list(infos)


def _literal_info(address: tuple[Any, ...], family: int, proto: int) -> list[_AddrInfo] | None:
    """``[addrinfo]`` of an IP literal address, resolved without awaiting; else None."""
    info = _numeric_info(address[0], address[1], family, proto, *address[2:])
    return None if info is None else [info]


def _numeric_info(
    host: Any, port: Any, family: int, proto: int, flowinfo: int = 0, scope_id: int = 0
) -> _AddrInfo | None:
    """The addrinfo of an IP literal, without ``getaddrinfo`` (asyncio's
    ``_ipaddr_info``); None when ``host`` is a name or ``port`` a service name.
    Remembered for hosts and ports of the types that answer (the key must hash)."""
    if (
        type(host) is not str
        or type(port) not in _KEY_TYPES
        or type(flowinfo) is not int
        or type(scope_id) is not int
    ):
        return _parse_numeric_info(host, port, family, proto, flowinfo, scope_id)
    key = (host, port, family, proto, flowinfo, scope_id)
    try:
        return _numeric_infos[key]
    except KeyError:
        pass
    info = _parse_numeric_info(host, port, family, proto, flowinfo, scope_id)
    if len(_numeric_infos) >= _NUMERIC_INFOS_MAX:
        _numeric_infos.clear()  # many addresses: start again rather than grow
    _numeric_infos[key] = info
    return info


def _parse_numeric_info(
    host: Any, port: Any, family: int, proto: int, flowinfo: int, scope_id: int
) -> _AddrInfo | None:
    if not isinstance(host, str) or proto not in (0, socket.IPPROTO_UDP):
        return None
    if port is None or port == "":
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None
    if "%" in host:
        return None  # a scope ("fe80::1%eth0"), which inet_pton does not take
    families = [socket.AF_INET, socket.AF_INET6] if family == socket.AF_UNSPEC else [family]
    for af in families:
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        address = (host, port, flowinfo, scope_id) if af == socket.AF_INET6 else (host, port)
        return af, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", address
    return None


def _carrier_proto(proto: int) -> int:
    """``proto`` for a UDP getaddrinfo: TCP is what rudp speaks, over UDP."""
    return socket.IPPROTO_UDP if proto == socket.IPPROTO_TCP else proto


def _bind(sock: socket.socket, address: Any) -> None:
    """``sock.bind``, failing as asyncio's binds do."""
    try:
        sock.bind(address)
    except OSError as err:
        raise OSError(
            err.errno,
            f"error while attempting to bind on address {address!r}: "
            f"{(err.strerror or str(err)).lower()}",
        ) from None


def _grow_buffers(sock: socket.socket, size: int) -> None:
    """At least ``size``-byte kernel buffers, best effort, as rudp's own sockets."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            if sock.getsockopt(socket.SOL_SOCKET, option) < size:
                sock.setsockopt(socket.SOL_SOCKET, option, size)


def _check_not_ssl_socket(sock: socket.socket) -> None:
    if isinstance(sock, SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _one_error(exceptions: list[OSError]) -> OSError:
    """As asyncio's create_connection: the error, or one summing them up."""
    if len(exceptions) == 1 or all(str(exc) == str(exceptions[0]) for exc in exceptions):
        return exceptions[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in exceptions)))

"""The keywords of asyncio's create_connection / create_server on rudp, where the
parity suite (tests/parity/test_protocols.py) only shows that each is taken:
``sock=`` on both sides and its checks, Happy Eyeballs (RFC 8305) racing real
handshakes and closing the losers, ``interleave`` ordering, the IP-literal fast
path that skips ``getaddrinfo``, and what reaches ``getaddrinfo`` otherwise.

Host names are resolved by a fake ``loop.getaddrinfo`` returning chosen addresses:
a "silent" one (a bare UDP socket that never answers), "refusers" (answer every
SYN with the RST of RFC 9293 3.10.7.1 and note the order they were tried in) and
real rudp servers.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import rudp
from rudp.aio import api
from rudp.aio.endpoint import Endpoint
from rudp.core.listener import reset_reply
from rudp.core.segment import SYN, decode
from tests.aio.aio_support import HOST, Recorder
from tests.aio.test_tls import Certificate
from tests.aio.test_tls import certificate as certificate  # the fixture

TIMEOUT = 10
NAME = "rudp-keywords.test"  # resolved only by the fake getaddrinfo
# Clients that close first linger in TIME-WAIT for a moment only (2 * msl).
QUICK = rudp.Config(msl=0.01)

AddrInfo = tuple[int, int, int, str, Any]


def v4(port: int) -> AddrInfo:
    return (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", (HOST, port))


def v6(port: int) -> AddrInfo:
    return (socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("::1", port, 0, 0))


# ------------------------------------------------------------------ fixtures
class Resolver:
    """A fake ``loop.getaddrinfo``: ``answers[host]``, and the calls it got."""

    def __init__(self) -> None:
        self.answers: dict[str, list[AddrInfo]] = {}
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        call = {"host": host, "port": port, "family": family, "type": type, "proto": proto}
        self.calls.append(call | {"flags": flags})
        return self.answers[host]


@pytest.fixture
async def fake_resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake)
    return fake


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> list[Endpoint]:
    """Every Endpoint create_connection / create_server makes from now on."""
    made: list[Endpoint] = []

    class Recording(Endpoint):
        def __init__(self, *args: Any, **kwds: Any) -> None:
            super().__init__(*args, **kwds)
            made.append(self)

    monkeypatch.setattr(api, "Endpoint", Recording)
    return made


@pytest.fixture
def no_resource_warnings() -> Iterator[None]:
    """Fail if an unclosed socket (or anything else) is collected with a ResourceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()  # what earlier tests left behind
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


class Factory:
    """A protocol factory that keeps what it made."""

    def __init__(self) -> None:
        self.made: list[Recorder] = []

    def __call__(self) -> Recorder:
        self.made.append(Recorder())
        return self.made[-1]


def client_endpoints(made: list[Endpoint]) -> list[Endpoint]:
    return [each for each in made if each._connected]


async def all_closed(made: list[Endpoint]) -> None:
    for each in made:
        await each.wait_closed()


class Refuser(asyncio.DatagramProtocol):
    """Answers each SYN with an RST (a port with nothing listening), noting its label."""

    def __init__(self, label: str, order: list[str]) -> None:
        self.label = label
        self.order = order
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.order.append(self.label)
        reply = reset_reply(data)
        assert reply is not None and self.transport is not None
        self.transport.sendto(reply, addr)


class Refusers:
    """Refusers, and the order in which they were tried."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.transports: list[asyncio.BaseTransport] = []

    async def add(self, label: str, host: str) -> int:
        """A Refuser bound on ``host``; returns its port."""
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: Refuser(label, self.order), local_addr=(host, 0)
        )
        self.transports.append(transport)
        return int(transport.get_extra_info("sockname")[1])


@pytest.fixture
async def refusers() -> AsyncIterator[Refusers]:
    made = Refusers()
    yield made
    for transport in made.transports:
        transport.close()


@pytest.fixture
def silent() -> Iterator[Callable[[str], socket.socket]]:
    """``make(host)``: a bound UDP socket that never answers (an unreachable peer)."""
    made: list[socket.socket] = []

    def make(host: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        sock.setblocking(False)
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.close()


def received_syns(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return count
        assert decode(data).flags & SYN
        count += 1


async def echo_server(**kwds: Any) -> tuple[rudp.Server, int]:
    """A server echoing what it reads up to EOF (``size`` bytes if given), on
    ``sock`` or HOST."""
    size = kwds.pop("size", -1)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read() if size < 0 else await reader.readexactly(size))
        writer.close()

    where = {} if "sock" in kwds else {"host": HOST, "port": 0}
    server = await rudp.start_server(echo, **where, **kwds)
    return server, server.sockets[0].getsockname()[1]


async def ping(transport: asyncio.Transport, client: Recorder) -> None:
    transport.write(b"ping")
    transport.write_eof()
    assert await client.lost is None
    assert bytes(client.data) == b"ping"


# ------------------------------------------------------------------- sock=
async def test_sock_on_both_sides(endpoints: list[Endpoint]) -> None:
    """A bound UDP socket for the server, a connected one for the client: rudp
    uses them as they are, and closes them when done, as asyncio does."""
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_sock.bind((HOST, 0))
    address = server_sock.getsockname()
    client_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client_sock.connect(address)
    async with asyncio.timeout(TIMEOUT):
        server, _ = await echo_server(sock=server_sock)
        async with server:
            assert server.sockets[0].getsockname() == address
            client = Recorder()
            transport, protocol = await rudp.create_connection(
                lambda: client, sock=client_sock, config=QUICK
            )
            assert protocol is client
            assert transport.get_extra_info("peername") == address
            assert transport.get_extra_info("sockname") == client_sock.getsockname()
            await ping(transport, client)
        await all_closed(endpoints)
    assert client_sock.fileno() == -1 and server_sock.fileno() == -1


async def test_sock_for_streams() -> None:
    async with asyncio.timeout(TIMEOUT):
        server, port = await echo_server()
        async with server:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect((HOST, port))
            reader, writer = await rudp.open_connection(sock=sock)
            writer.write(b"streams")
            writer.write_eof()
            assert await reader.read() == b"streams"
            writer.close()
            await writer.wait_closed()


async def test_server_sock_not_bound_gets_an_ephemeral_port_as_listen_does() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    async with asyncio.timeout(TIMEOUT):
        server, port = await echo_server(sock=sock)
        async with server:
            assert port != 0
            client = Recorder()
            transport, _ = await rudp.create_connection(lambda: client, HOST, port)
            await ping(transport, client)


async def test_sock_argument_errors_as_asyncio() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        with pytest.raises(ValueError, match="A UDP socket was expected, got"):
            await rudp.create_connection(Recorder, sock=tcp)
        with pytest.raises(ValueError, match="A UDP socket was expected, got"):
            await rudp.create_server(Recorder, sock=tcp)
        wrapped = ssl.create_default_context().wrap_socket(
            tcp, server_hostname="x", do_handshake_on_connect=False
        )
        with wrapped:
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                await rudp.create_connection(Recorder, sock=wrapped)
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                await rudp.create_server(Recorder, sock=wrapped)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match="A UDP socket connected to the server was expected"):
            await rudp.create_connection(Recorder, sock=udp)
        with pytest.raises(ValueError, match=r"^host/port and sock can not be specified at the"):
            await rudp.create_connection(Recorder, HOST, 9, sock=udp)
        with pytest.raises(ValueError, match=r"^host/port and sock can not be specified at the"):
            await rudp.create_server(Recorder, HOST, 0, sock=udp)
        udp.connect((HOST, 9))
        with pytest.raises(ValueError, match="A UDP socket not connected to a peer was expected"):
            await rudp.create_server(Recorder, sock=udp)
        assert udp.fileno() != -1  # an argument error leaves the socket to its owner
    with pytest.raises(
        ValueError, match=r"^host and port was not specified and no sock specified$"
    ):
        await rudp.create_connection(Recorder)
    with pytest.raises(ValueError, match=r"^Neither host/port nor sock were specified$"):
        await rudp.create_server(Recorder)


async def test_asyncio_raises_the_same_sock_errors_for_tcp() -> None:
    """The messages above are asyncio's own (with "UDP" for "Stream")."""
    loop = asyncio.get_running_loop()
    if "uvloop" in type(loop).__module__:
        pytest.skip("uvloop words its errors differently")
    with pytest.raises(
        ValueError, match=r"^host and port was not specified and no sock specified$"
    ):
        await loop.create_connection(asyncio.Protocol)
    with pytest.raises(ValueError, match=r"^Neither host/port nor sock were specified$"):
        await loop.create_server(asyncio.Protocol)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match=r"^host/port and sock can not be specified at the"):
            await loop.create_connection(asyncio.Protocol, HOST, 9, sock=udp)
        with pytest.raises(ValueError, match="A Stream Socket was expected, got"):
            await loop.create_connection(asyncio.Protocol, sock=udp)


# ---------------------------------------------------------- Happy Eyeballs
async def test_rfc8305_happy_eyeballs_skips_a_silent_first_address(
    fake_resolver: Resolver,
    endpoints: list[Endpoint],
    silent: Callable[[str], socket.socket],
    no_resource_warnings: None,
) -> None:
    """The first address (IPv6) never answers: after ``happy_eyeballs_delay`` the
    next one (IPv4) is tried and wins; the first attempt is then closed."""
    async with asyncio.timeout(TIMEOUT):
        server, port = await echo_server()
        async with server:
            unreachable = silent("::1")
            fake_resolver.answers[NAME] = [v6(unreachable.getsockname()[1]), v4(port)]
            factory = Factory()
            transport, client = await rudp.create_connection(
                factory, NAME, port, happy_eyeballs_delay=0.05, config=QUICK
            )
            assert factory.made == [client] and client.calls == ["connection_made"]
            assert transport.get_extra_info("peername") == (HOST, port)
            assert received_syns(unreachable) >= 1
            await ping(transport, client)
            attempts = client_endpoints(endpoints)
            assert len(attempts) == 2
            await all_closed(attempts)


async def test_rfc8305_happy_eyeballs_moves_on_at_once_when_refused(
    fake_resolver: Resolver, endpoints: list[Endpoint], refusers: Refusers
) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, port = await echo_server()
        async with server:
            refused = await refusers.add("refused", "::1")
            fake_resolver.answers[NAME] = [v6(refused), v4(port)]
            client = Recorder()
            # A delay far longer than the test: only the failure can start attempt 2.
            transport, _ = await rudp.create_connection(
                lambda: client, NAME, port, happy_eyeballs_delay=3600, config=QUICK
            )
            assert refusers.order == ["refused"]
            await ping(transport, client)
            await all_closed(client_endpoints(endpoints))


async def test_rfc8305_happy_eyeballs_all_failing_raises_as_asyncio(
    fake_resolver: Resolver, endpoints: list[Endpoint], refusers: Refusers
) -> None:
    async with asyncio.timeout(TIMEOUT):
        first, second = await refusers.add("a", "::1"), await refusers.add("b", HOST)
        fake_resolver.answers[NAME] = [v6(first), v4(second)]
        with pytest.raises(ConnectionRefusedError):
            await rudp.create_connection(Recorder, NAME, 9, happy_eyeballs_delay=0.05)
        await all_closed(client_endpoints(endpoints))
        assert len(client_endpoints(endpoints)) == 2


async def test_rfc8305_racing_live_servers_makes_one_connection(
    fake_resolver: Resolver, endpoints: list[Endpoint], no_resource_warnings: None
) -> None:
    """Two live servers, the second attempt started at once: both handshakes may
    complete, but the protocol sees one connection; the other is reset, and every
    losing socket is closed."""
    async with asyncio.timeout(TIMEOUT):
        server_a, port_a = await echo_server()
        server_b, port_b = await echo_server()
        async with server_a, server_b:
            fake_resolver.answers[NAME] = [v4(port_a), v4(port_b)]
            for _ in range(5):
                endpoints.clear()
                factory = Factory()
                transport, client = await rudp.create_connection(
                    factory, NAME, 1, happy_eyeballs_delay=0, config=QUICK
                )
                assert factory.made == [client] and client.calls == ["connection_made"]
                await ping(transport, client)
                await all_closed(client_endpoints(endpoints))


async def test_a_handshake_completing_after_the_winner_is_reset(
    endpoints: list[Endpoint], no_resource_warnings: None
) -> None:
    """Two attempts of one race left to finish (on loopback a race is usually
    decided before the loser's handshake completes): the second to complete finds
    the protocol taken, resets its connection and closes its socket."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(TIMEOUT):
        accepted = Factory()
        server_a = await rudp.create_server(accepted, HOST, 0)
        server_b = await rudp.create_server(accepted, HOST, 0)
        async with server_a, server_b:
            socks = []
            for server in (server_a, server_b):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect(server.sockets[0].getsockname())
                socks.append(sock)
            client = Recorder()
            race = api._Race(client)
            outcomes = await asyncio.gather(
                *(api._handshake(loop, race, sock, QUICK) for sock in socks),
                return_exceptions=True,
            )
            winners = [each for each in outcomes if not isinstance(each, BaseException)]
            losers = [each for each in outcomes if isinstance(each, BaseException)]
            assert winners == [race.winner] and client.calls == ["connection_made"]
            assert len(losers) == 1 and isinstance(losers[0], ConnectionAbortedError)
            assert race.winner is not None
            race.winner.abort()
            # Reset, both servers' connections end: the loser left nothing half-open
            # (whether its server had accepted it yet or not).
            servers = (server_a, server_b)
            while any(server.stats().connections_active for server in servers):
                await asyncio.sleep(0.005)
            for peer in accepted.made:
                assert isinstance(await peer.lost, ConnectionResetError)
            await all_closed(client_endpoints(endpoints))


async def test_rfc8305_cancelled_race_closes_every_attempt(
    fake_resolver: Resolver,
    endpoints: list[Endpoint],
    silent: Callable[[str], socket.socket],
    no_resource_warnings: None,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        first, second = silent("::1"), silent(HOST)
        fake_resolver.answers[NAME] = [v6(first.getsockname()[1]), v4(second.getsockname()[1])]
        connecting = asyncio.create_task(
            rudp.create_connection(Recorder, NAME, 1, happy_eyeballs_delay=0.01)
        )
        while len(endpoints) < 2 or not all(each._links for each in endpoints):
            await asyncio.sleep(0.005)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        await all_closed(endpoints)


async def test_rfc8305_happy_eyeballs_with_tls(
    fake_resolver: Resolver,
    endpoints: list[Endpoint],
    silent: Callable[[str], socket.socket],
    certificate: Certificate,
    no_resource_warnings: None,
) -> None:
    """The TLS layer, made once, runs over the attempt that wins only."""
    async with asyncio.timeout(TIMEOUT):
        server, port = await echo_server(ssl=certificate.server_context(), size=6)
        async with server:
            unreachable = silent("::1")
            fake_resolver.answers["localhost"] = [v6(unreachable.getsockname()[1]), v4(port)]
            reader, writer = await rudp.open_connection(
                "localhost",
                port,
                ssl=certificate.client_context(),
                happy_eyeballs_delay=0.05,
                config=QUICK,
            )
            assert writer.get_extra_info("peercert") is not None
            writer.write(b"secret")
            assert await reader.read() == b"secret"
            writer.close()
            await writer.wait_closed()
            assert len(client_endpoints(endpoints)) == 2
            await all_closed(client_endpoints(endpoints))


# --------------------------------------------------------------- interleave
@pytest.mark.parametrize(
    ("interleave", "order"),
    [
        (None, ["6a", "6b", "6c", "4a", "4b"]),
        (1, ["6a", "4a", "6b", "4b", "6c"]),
        (2, ["6a", "6b", "4a", "6c", "4b"]),
    ],
)
async def test_rfc8305_4_interleave_alternates_families_as_asyncio(
    fake_resolver: Resolver, refusers: Refusers, interleave: int | None, order: list[str]
) -> None:
    async with asyncio.timeout(TIMEOUT):
        answers = []
        for label in ["6a", "6b", "6c", "4a", "4b"]:
            if label.startswith("6"):
                answers.append(v6(await refusers.add(label, "::1")))
            else:
                answers.append(v4(await refusers.add(label, HOST)))
        fake_resolver.answers[NAME] = answers
        with pytest.raises(ConnectionRefusedError):
            await rudp.create_connection(Recorder, NAME, 9, interleave=interleave)
        assert refusers.order == order


def test_interleave_matches_asyncio() -> None:
    from asyncio.base_events import _interleave_addrinfos  # type: ignore[attr-defined]

    infos = [v6(1), v6(2), v6(3), v4(4), v4(5), v6(6)]
    for count in (1, 2, 3, 5):
        assert api._interleave(list(infos), count) == _interleave_addrinfos(infos, count)


# ------------------------------------------------- resolution and getaddrinfo
async def fail_getaddrinfo(*args: Any, **kwds: Any) -> Any:
    raise AssertionError(f"getaddrinfo{args} was called")


@pytest.mark.parametrize("host", [HOST, "::1"])
async def test_ip_literals_skip_getaddrinfo(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """As asyncio's _ipaddr_info: an IP literal needs no resolver thread."""
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fail_getaddrinfo)
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, host, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            client = Recorder()
            transport, _ = await rudp.create_connection(
                lambda: client, host, port, local_addr=(host, 0)
            )
            assert transport.get_extra_info("peername")[:2] == (host, port)
            assert transport.get_extra_info("sockname")[0] == host
            transport.close()
            assert await client.lost is None


async def test_names_go_to_getaddrinfo_for_udp(fake_resolver: Resolver) -> None:
    """``family``, ``proto`` and ``flags`` reach getaddrinfo, asking for UDP (and
    ``IPPROTO_TCP``, the protocol rudp speaks, asks for the UDP carrying it)."""
    async with asyncio.timeout(TIMEOUT):
        fake_resolver.answers["here"] = [v4(0)]
        server = await rudp.create_server(Recorder, "here", 0, family=socket.AF_INET)
        async with server:
            port = server.sockets[0].getsockname()[1]
            fake_resolver.answers["there"] = [v4(port)]
            client = Recorder()
            transport, _ = await rudp.create_connection(
                lambda: client,
                "there",
                port,
                family=socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_ADDRCONFIG,
                local_addr=("here", 0),
            )
            transport.close()
            assert await client.lost is None
    assert fake_resolver.calls == [
        {
            "host": "here",
            "port": 0,
            "family": socket.AF_INET,
            "type": socket.SOCK_DGRAM,
            "proto": 0,
            "flags": socket.AI_PASSIVE,
        },
        {
            "host": "there",
            "port": port,
            "family": socket.AF_INET,
            "type": socket.SOCK_DGRAM,
            "proto": socket.IPPROTO_UDP,
            "flags": socket.AI_ADDRCONFIG,
        },
        {
            "host": "here",
            "port": 0,
            "family": socket.AF_INET,
            "type": socket.SOCK_DGRAM,
            "proto": socket.IPPROTO_UDP,
            "flags": socket.AI_ADDRCONFIG,
        },
    ]


async def test_no_local_address_of_the_family_fails_as_asyncio(fake_resolver: Resolver) -> None:
    fake_resolver.answers[NAME] = [v6(9)]
    with pytest.raises(OSError, match="no matching local address with family="):
        await rudp.create_connection(Recorder, NAME, 9, local_addr=(HOST, 0))


async def test_empty_getaddrinfo_fails_as_asyncio(fake_resolver: Resolver) -> None:
    fake_resolver.answers[NAME] = []
    with pytest.raises(OSError, match=r"^getaddrinfo\(\) returned empty list$"):
        await rudp.create_connection(Recorder, NAME, 9)
    with pytest.raises(OSError, match=rf"^getaddrinfo\('{NAME}'\) returned empty list$"):
        await rudp.create_server(Recorder, NAME, 9)


# ------------------------------------------------------ reuse_address / port
@pytest.mark.parametrize("reuse_address", [None, False])
async def test_without_reuse_address_a_port_in_use_stays_in_use(
    reuse_address: bool | None,
) -> None:
    """On UDP, SO_REUSEADDR on both sockets lets a second one take a port in use
    (Linux then gives it the datagrams), which TCP's never allows a listener: rudp
    leaves it off unless asked, and a second server fails as on TCP."""
    server = await rudp.create_server(Recorder, HOST, 0, reuse_address=reuse_address)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(OSError) as in_use:
            await rudp.create_server(Recorder, HOST, port, reuse_address=reuse_address)
        assert in_use.value.errno == errno.EADDRINUSE


async def test_reuse_address_sets_so_reuseaddr() -> None:
    server = await rudp.create_server(Recorder, HOST, 0, reuse_address=True)
    async with server:
        assert server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)


async def test_reuse_port_sets_so_reuseport() -> None:
    server = await rudp.create_server(Recorder, HOST, 0, reuse_port=True)
    async with server:
        assert server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)

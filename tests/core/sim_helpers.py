"""A bulk transfer over the simulated network: one client Connection, one server
behind a Listener, a bottleneck path each way (tests of what slow start and the
receive window do to a long transfer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine_helpers import ISN, PEER_ISN, payload

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.listener import Listener
from rudp.core.state import State
from rudp.testing import ConnectionHost, Impairment, ListenerHost, SimulatedNetwork

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 8080)


@dataclass
class BulkRun:
    net: SimulatedNetwork
    client: Connection
    server: Connection
    server_host: ListenerHost
    data: bytes
    seconds: float  # from the first byte sent to the end of the run


def bulk_transfer(
    config: Config,
    size: int,
    path: Impairment,
    back: Impairment,
    *,
    until: float = 30.0,
    trace: bool = False,
    **server_hooks: Any,
) -> BulkRun:
    """Open a connection through ``path`` (client to server) and ``back``, send
    ``size`` bytes, and run until the server's application has read them all or
    ``until``.  ``server_hooks`` go to the ListenerHost (on_event, on_accept)."""
    net = SimulatedNetwork(1, trace=trace)
    net.set_impairment(CLIENT, SERVER, path)
    net.set_impairment(SERVER, CLIENT, back)
    listener = Listener(config, local_port=SERVER[1], isn_source=lambda *_: PEER_ISN)
    server_host = net.attach(SERVER, ListenerHost(listener, SERVER, **server_hooks))
    client = Connection(config, isn=ISN, local_port=CLIENT[1], remote_port=SERVER[1])
    net.attach(CLIENT, ConnectionHost(client, CLIENT, SERVER))
    client.connect(net.now)
    assert net.run(stop=lambda: client.state is State.ESTABLISHED, until=1.0) == "stopped"
    [server] = server_host.accepted
    start = net.now
    data = payload(size)
    client.send(data)
    net.run(stop=lambda: server.stats.bytes_delivered >= size, until=until)
    return BulkRun(net, client, server, server_host, data, net.now - start)

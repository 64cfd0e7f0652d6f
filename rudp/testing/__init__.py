"""Test a protocol over a hostile network without sockets or sleeps: a virtual
clock and a seeded simulated network that drives sans-IO engines; and, over real
sockets, a loopback UDP relay with the same impairments."""

from .clock import VirtualClock
from .relay import ImpairmentRelay, RelayDirectionStats, RelayStats
from .simnet import (
    Address,
    ClosedPortHost,
    ConnectionHost,
    Datagram,
    DirectionStats,
    EventHook,
    GilbertElliott,
    Host,
    Impairment,
    ListenerHost,
    RunOutcome,
    SimulatedNetwork,
    StepLimitExceeded,
    TraceRecord,
)

__all__ = [
    "Address",
    "ClosedPortHost",
    "ConnectionHost",
    "Datagram",
    "DirectionStats",
    "EventHook",
    "GilbertElliott",
    "Host",
    "Impairment",
    "ImpairmentRelay",
    "ListenerHost",
    "RelayDirectionStats",
    "RelayStats",
    "RunOutcome",
    "SimulatedNetwork",
    "StepLimitExceeded",
    "TraceRecord",
    "VirtualClock",
]

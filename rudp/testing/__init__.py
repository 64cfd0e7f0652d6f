"""Test a protocol over a hostile network without sockets or sleeps: a virtual
clock and a seeded simulated network that drives sans-IO engines."""

from .clock import VirtualClock
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
    "ListenerHost",
    "RunOutcome",
    "SimulatedNetwork",
    "StepLimitExceeded",
    "TraceRecord",
    "VirtualClock",
]

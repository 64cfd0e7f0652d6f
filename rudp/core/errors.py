"""Exceptions of the engine.

Misuse by the local application raises :class:`LocalProtocolError`.  A peer that
breaks the protocol never makes the engine raise: its segment is dropped and
counted.  Connection failures reach the application as the builtin exceptions
kernel TCP gives (``ConnectionResetError``, ``ConnectionRefusedError``,
``TimeoutError``) inside a ``ConnectionTerminated`` event.
"""


class RudpError(Exception):
    """Base class of every exception rudp defines."""


class LocalProtocolError(RudpError):
    """The application asked for something the connection cannot do now
    (send after shutdown, connect twice, a negative window...)."""


class MalformedSegment(RudpError, ValueError):
    """A datagram is not a well-formed TCP segment (the only exception
    :func:`rudp.core.segment.decode` raises)."""

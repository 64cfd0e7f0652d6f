"""Structured log events, emitted through the stdlib logger ``"rudp"``.

Quiet and cheap by default: ``filter_by_level`` runs first and drops an event
unless the ``"rudp"`` logger is enabled for its level, so nothing is formatted
for the usual WARNING threshold.  An enabled event reaches stdlib logging as a
``"event key=value ..."`` message (readable with any handler) and carries the
structured fields in ``record.rudp_event`` for formatters that want them.

Loggers are bound with ``conn`` (a per-process connection number), ``side``
(``"client"`` or ``"server"``) and ``peer`` (``"host:port"``).  Event names:

- ``state_change`` (``old``, ``new``): emitted by the engine on every transition;
- ``rto`` (``rto``, ``timeouts``): a retransmission timeout;  ``loss_recovery``
  (``cwnd``, ``ssthresh``): fast recovery begins;  ``retransmit`` (``seq``,
  ``length``, ``fin``, at DEBUG): one segment sent again;
- ``connect``: an active open starts;  ``accept``: a passive open is handed to the
  application;  ``handshake_failed`` (``error``);
- ``close``: the application closed its side;  ``reset``: a reset was sent
  (``by="local"``, after ``abort()``) or received (``by="peer"``);
- ``connection_lost`` (``error``): the application was told the connection is over.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Hashable
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, WrappedLogger

LOGGER_NAME = "rudp"

_stdlib_logger = logging.getLogger(LOGGER_NAME)
_connection_numbers = itertools.count(1)
_CONSOLE_HANDLER_NAME = "rudp-console"


def _to_stdlib_call(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Last processor: the (args, kwargs) of the stdlib logging call."""
    event = event_dict.get("event", "")
    fields = " ".join(f"{key}={value}" for key, value in event_dict.items() if key != "event")
    message = f"{event} {fields}" if fields else str(event)
    return (message,), {"extra": {"rudp_event": event_dict}}


_root_logger = cast(
    structlog.stdlib.BoundLogger,
    structlog.wrap_logger(
        _stdlib_logger,
        processors=[structlog.stdlib.filter_by_level, _to_stdlib_call],
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
    ).bind(),
)


def format_address(address: Hashable) -> str:
    """``host:port`` for an IPv4 or IPv6 socket address, ``repr`` otherwise."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(address)


def get_logger(**bound: Any) -> structlog.stdlib.BoundLogger:
    """A logger of the ``"rudp"`` family with ``bound`` fields on every event."""
    if not bound:
        return _root_logger  # binding returns a new logger: this one never changes
    return _root_logger.bind(**bound)


class _Quiet:
    """A connection's logger while rudp's is off: every call does nothing, so
    thousands of connections pay nothing for events nobody reads (a filtered
    structlog call still costs microseconds)."""

    __slots__ = ()

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    debug = warning = error = info

    def bind(self, **kwargs: Any) -> _Quiet:
        return self


QUIET = cast(structlog.stdlib.BoundLogger, _Quiet())


def connection_logger(side: str, peer: Hashable) -> structlog.stdlib.BoundLogger:
    """A logger for one new connection, numbered in order of creation -- or
    ``QUIET`` when the ``"rudp"`` logger is not enabled for INFO as the connection
    opens (enable logging first to see a connection's events)."""
    number = next(_connection_numbers)
    if not _stdlib_logger.isEnabledFor(logging.INFO):
        return QUIET
    return _root_logger.bind(conn=number, side=side, peer=format_address(peer))


class ConsoleFormatter(logging.Formatter):
    """One short line per event: ``0.012s client#1 127.0.0.1:5000  SYN-SENT -> ESTABLISHED``."""

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._start is None:
            self._start = record.created
        event_dict: dict[str, Any] | None = getattr(record, "rudp_event", None)
        if event_dict is None:
            return super().format(record)
        fields = dict(event_dict)
        event = fields.pop("event", "")
        who = ""
        if "side" in fields and "conn" in fields:
            who = f"{fields.pop('side')}#{fields.pop('conn')} {fields.pop('peer', '')}".rstrip()
        if event == "state_change" and "old" in fields and "new" in fields:
            what = f"{fields.pop('old')} -> {fields.pop('new')}"
        else:
            what = str(event)
        rest = " ".join(f"{key}={value}" for key, value in fields.items())
        elapsed = record.created - self._start
        return f"{elapsed:7.3f}s  {who:<28} {what}" + (f"  {rest}" if rest else "")


def configure_console_logging(
    level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Print rudp's events to ``stream`` (stderr by default), one line each.

    Replaces the handler a previous call installed; rudp's events then stop
    propagating to the root logger, so they are not printed twice.
    """
    for handler in list(_stdlib_logger.handlers):
        if handler.get_name() == _CONSOLE_HANDLER_NAME:
            _stdlib_logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    handler.set_name(_CONSOLE_HANDLER_NAME)
    _stdlib_logger.addHandler(handler)
    _stdlib_logger.setLevel(level)
    _stdlib_logger.propagate = False

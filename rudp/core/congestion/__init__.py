"""Congestion control algorithms, chosen by name (``Config.congestion_control``)."""

from . import cubic as _cubic  # noqa: F401  (registers itself)
from . import newreno as _newreno  # noqa: F401  (registers itself)
from .base import CongestionControl, available, create, register

__all__ = ["CongestionControl", "available", "create", "register"]

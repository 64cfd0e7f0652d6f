"""``python -m rudp``: see :mod:`rudp.cli`."""

from .cli import main

raise SystemExit(main())

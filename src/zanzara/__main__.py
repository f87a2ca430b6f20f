"""``python -m zanzara``: the same as the ``zanzara`` command (see :mod:`zanzara.cli`)."""

from zanzara.cli import main

__all__: list[str] = []

raise SystemExit(main())

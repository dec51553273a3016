"""How one host came out of a run (``kvpod up``, ``diff``, ``check``): the statuses reports and tables show."""

from __future__ import annotations

import enum


class HostStatus(enum.StrEnum):
    """A ``str``: JSON reports and comparisons with plain strings read it as its value."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    MANUAL = "manual"  # an enclosure kvpod does not configure (its sheet says what to do by hand)
    WOULD_CHANGE = "would-change"  # a dry run: something would change

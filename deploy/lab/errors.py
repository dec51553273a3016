"""The one exception type the lab raises."""


class LabError(Exception):
    """A lab operation failed; the message says what and, where known, how to fix it."""

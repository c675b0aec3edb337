"""The job's own failure: a run that stopped on purpose, with a message that says why."""

from __future__ import annotations


class JobFailed(RuntimeError):
    """The run stopped on purpose (bad input, failed gate); nothing was published."""

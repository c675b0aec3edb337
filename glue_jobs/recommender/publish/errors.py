"""The one error publishing raises: a sink could not take the run, and what serves what now."""

from __future__ import annotations


class PublishError(RuntimeError):
    """A sink could not take the run; the previously published run is still the active one."""

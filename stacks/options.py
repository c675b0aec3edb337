"""Stack options: frozen dataclasses beside the stack that uses them, each field naming the CDK
context key it is read from, each class listing its `problems()` in those keys' terms.
cdk_app/config.py alone reads the context; a stack receives its options."""

from __future__ import annotations

from dataclasses import MISSING, Field, field
from typing import Any

_CONTEXT_KEY = "context_key"


def option(context_key: str, default: Any = MISSING, *, factory: Any = MISSING) -> Any:
    """A field set by `-c <context_key>=...` (or the settings file), else by `default` / `factory()`."""
    return field(default=default, default_factory=factory, metadata={_CONTEXT_KEY: context_key})


def context_key(declared: Field[Any]) -> str | None:
    """The context key a field is read from; None for fields that are not options themselves."""
    key = declared.metadata.get(_CONTEXT_KEY)
    return str(key) if key is not None else None

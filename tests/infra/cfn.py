"""Reading synthesised templates the way AWS reads them at deploy time: across stacks.

A value in one template often names a resource in another (`Fn::ImportValue` of an export);
the deploy-contract rules need the resource itself (the key behind a log group's `KmsKeyId`,
the topic behind an alarm's action), so these helpers follow references to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from tests.infra.conftest import Built


@dataclass(frozen=True)
class Ref:
    """A resource in one of the app's templates."""

    stack: str  # key in Built.stacks
    logical_id: str

    def resource(self, built: Built) -> dict[str, Any]:
        return template(built, self.stack)["Resources"][self.logical_id]


def template(built: Built, stack: str) -> dict[str, Any]:
    cache = built.__dict__.setdefault("_json", {})
    if stack not in cache:
        cache[stack] = built.templates[stack].to_json()
    return cache[stack]  # type: ignore[no-any-return]


def resources_of(built: Built, kind: str) -> Iterator[tuple[Ref, dict[str, Any]]]:
    """Every resource of one CloudFormation type, in every stack of the app."""
    for stack in built.stacks:
        for logical_id, resource in template(built, stack)["Resources"].items():
            if resource["Type"] == kind:
                yield Ref(stack, logical_id), resource


def the_one(built: Built, kind: str, stack: str | None = None, **properties: Any) -> tuple[Ref, dict[str, Any]]:
    """The single resource of a type (in one stack, with these property values), or a failed assertion."""
    found = [(ref, r) for ref, r in resources_of(built, kind) if (stack is None or ref.stack == stack)
             and all(r["Properties"].get(k) == v for k, v in properties.items())]
    assert len(found) == 1, f"expected one {kind} {properties or ''}, found {len(found)}"
    return found[0]


def _exports(built: Built) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for stack in built.stacks:
        for output in template(built, stack).get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            if isinstance(name, str):
                out[name] = (stack, output["Value"])
    return out


def resolve(built: Built, stack: str, value: Any) -> Ref | None:
    """The resource a Ref / Fn::GetAtt / Fn::ImportValue points at, or None for anything else
    (a literal, a parameter, an imported name)."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref" and arg in template(built, stack)["Resources"]:
            return Ref(stack, arg)
        if fn == "Fn::GetAtt":
            logical_id = arg[0] if isinstance(arg, list) else str(arg).split(".")[0]
            if logical_id in template(built, stack)["Resources"]:
                return Ref(stack, logical_id)
        if fn == "Fn::ImportValue" and isinstance(arg, str):
            exported = _exports(built).get(arg)
            if exported:
                return resolve(built, exported[0], exported[1])
    return None


def statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    stmts = policy_document.get("Statement", [])
    return stmts if isinstance(stmts, list) else [stmts]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def action_matches(action: str, patterns: Any) -> bool:
    """IAM's matching of an action against policy action patterns: case-insensitive, `*` and `?` wildcards."""
    listed = patterns if isinstance(patterns, list | tuple) else [patterns]
    return any(fnmatchcase(action.lower(), str(p).lower()) for p in listed)


def service_principals(statement: dict[str, Any]) -> list[str]:
    """Service principals of a statement, with `{"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ...]]}`
    rendered as `logs.<AWS::Region>.amazonaws.com`."""
    principal = statement.get("Principal", {})
    if not isinstance(principal, dict):
        return []
    return [render(p) for p in as_list(principal.get("Service", []))]


def render(value: Any) -> str:
    """A readable string for a template value: pseudo parameters and references in angle brackets."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{'.'.join(arg) if isinstance(arg, list) else arg}>"
        if fn == "Fn::Join":
            return str(arg[0]).join(render(part) for part in arg[1])
        if fn == "Fn::ImportValue":
            return f"<import {render(arg)}>"
    return json.dumps(value, sort_keys=True)

"""Builds each CDK app once per test session: the default dev app, and prod with every option on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# Prod with every option on: the same file `make synth` hands the CDK CLI (-c settingsFile=...).
PROD_SETTINGS_FILE = Path(__file__).resolve().parents[2] / "cdk_app" / "examples" / "prod-all-options.json"
PROD_CONTEXT: dict[str, Any] = json.loads(PROD_SETTINGS_FILE.read_text())


@dataclass
class Built:
    app: Any
    stacks: dict[str, Any]
    templates: dict[str, Any]  # stack key -> aws_cdk.assertions.Template
    settings: Any


def build(context: dict[str, Any]) -> Built:
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from cdk_app.app import build as build_app
    from cdk_app.config import settings_from_context

    app = App(context=context)
    settings = settings_from_context(app.node.try_get_context)
    stacks = build_app(app, settings)
    return Built(app, stacks, {k: Template.from_stack(s) for k, s in stacks.items()}, settings)


@pytest.fixture(scope="session")
def dev() -> Built:
    return build({"env": "dev"})


@pytest.fixture(scope="session")
def prod() -> Built:
    return build(PROD_CONTEXT)


@pytest.fixture(params=["dev", "prod"], ids=["dev", "prod-all-options"])
def variant(request: pytest.FixtureRequest) -> Built:
    """Each template variant the deploy-contract rules hold for: dev defaults, prod with every option."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]

"""Builds each CDK app once per test session: the default dev app, and prod with every option on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

PROD_CONTEXT: dict[str, Any] = {
    "env": "prod", "apiAuth": "jwt", "jwtIssuer": "https://auth.example.com/", "jwtAudience": "recs-api",
    "schedule": "cron(0 3 * * ? *)", "alarmEmail": "ops@example.com", "emr": "true",
    "jobArguments": {"--top-n": "10"},
    "quicksightPrincipalArn": "arn:aws:quicksight:eu-west-1:000000000000:group/default/analysts",
    "vpcId": "vpc-0123456789abcdef0", "vpcAzs": "eu-west-1a,eu-west-1b",
    "vpcSubnetIds": "subnet-0123456789abcdef1,subnet-0123456789abcdef2",
    "dms": {"engine": "mysql", "host": "ratings-db.internal.example.com", "port": 3306, "database": "music",
            "tables": ["ratings"], "createServiceRoles": True,
            "secretArn": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:ratings-db-AbCdEf"},
}


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

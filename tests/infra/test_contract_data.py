"""Deploy-time contracts of the data path (DMS ingestion, Aurora), each citing the AWS page that states it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra import cfn
from tests.infra.conftest import PROD_CONTEXT, Built

pytestmark = pytest.mark.infra

# Every log type the cluster exports, and where Aurora writes it.
EXPORTED_LOGS = ("error", "general", "slowquery", "audit")


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _one(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = _resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def _depends_on(resource: dict[str, Any]) -> list[str]:
    return cfn.as_list(resource.get("DependsOn", []))


# --- DMS ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ingestion_with_existing_roles() -> dict[str, Any]:
    """The ingestion stack alone, for an account where dms-vpc-role already exists (createServiceRoles off)."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template

    from cdk_app.config import settings_from_context
    from stacks.ingestion import IngestionStack
    from stacks.network import ExistingVpc

    app = App(context={**PROD_CONTEXT, "dms": {**PROD_CONTEXT["dms"], "createServiceRoles": False}})
    settings = settings_from_context(app.node.try_get_context)
    assert settings.dms and settings.vpc_id and not settings.dms.create_service_roles
    key = kms.Key(Stack(app, "Keys"), "Key")
    stack = IngestionStack(app, "Ingestion", prefix=settings.prefix, key=key, source=settings.dms, multi_az=True,
                           vpc=ExistingVpc(settings.vpc_id, settings.vpc_azs, settings.vpc_subnet_ids),
                           log_retention=logs.RetentionDays.ONE_WEEK)
    return dict(Template.from_stack(stack).to_json())


def test_dms_subnet_group_is_created_after_dms_vpc_role(prod: Built,
                                                         ingestion_with_existing_roles: dict[str, Any]) -> None:
    """"Resource creation fails if the dms-vpc-role AWS Identity and Access Management (IAM) role doesn't
    already exist." https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-dms-replicationsubnetgroup.html
    Nothing in the template orders the two (the group does not reference the role), so the stack that
    creates the role must make the group depend on it; where the role already exists there is none."""
    template = cfn.template(prod, "ingestion")
    (role_id,) = [k for k, r in _resources(template, "AWS::IAM::Role").items()
                  if r["Properties"].get("RoleName") == "dms-vpc-role"]
    _, group = _one(template, "AWS::DMS::ReplicationSubnetGroup")
    assert role_id in _depends_on(group)

    assert not [r for r in _resources(ingestion_with_existing_roles, "AWS::IAM::Role").values()
                if r["Properties"].get("RoleName") == "dms-vpc-role"]
    _, group = _one(ingestion_with_existing_roles, "AWS::DMS::ReplicationSubnetGroup")
    assert not [d for d in _depends_on(group) if "DmsVpcRole" in d]


def _sdk_call(resource: dict[str, Any], event: str) -> dict[str, Any]:
    """An AwsCustomResource's call for one event, with references rendered as <LogicalId.Attribute>."""
    call: dict[str, Any] = json.loads(cfn.render(resource["Properties"][event]))
    return call


def _start_replication(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    found = [(k, r) for k, r in template["Resources"].items() if r["Type"].startswith("Custom::")
             and "Create" in r["Properties"] and "startreplication" in json.dumps(r["Properties"]["Create"]).lower()]
    assert len(found) == 1, "no custom resource starts the DMS replication after deploy"
    return found[0]


def test_dms_replication_is_started_after_deploy_and_stopped_on_delete(prod: Built) -> None:
    """A DMS Serverless replication config does nothing until StartReplication is called for it
    ("For a given DMS Serverless replication configuration, DMS connects to the source endpoint ... and
    starts replicating", StartReplicationType "start-replication" for the first run):
    https://docs.aws.amazon.com/cli/latest/reference/dms/start-replication.html ; StopReplication stops it
    ("stops any and all ongoing AWS DMS Serverless replications"):
    https://docs.aws.amazon.com/goto/WebAPI/dms-2016-01-01/StopReplication . Both take the config's ARN.
    Idempotent: an already running (or already stopped) replication answers InvalidResourceStateFault,
    a config already gone ResourceNotFoundFault; neither may fail the stack."""
    template = cfn.template(prod, "ingestion")
    replication_id, _ = _one(template, "AWS::DMS::ReplicationConfig")
    arn = f"<{replication_id}.ReplicationConfigArn>"
    _, resource = _start_replication(template)

    for event in ("Create", "Update"):
        call = _sdk_call(resource, event)
        assert call["action"].lower() == "startreplication"
        assert call["parameters"] == {"ReplicationConfigArn": arn, "StartReplicationType": "start-replication"}
        # A fixed physical id: an update never replaces (and so never stops) the running replication.
        assert "id" in call["physicalResourceId"]
        ignore = call["ignoreErrorCodesMatching"]
        assert re.fullmatch(ignore, "InvalidResourceStateFault")
        assert not re.fullmatch(ignore, "AccessDeniedFault") and not re.fullmatch(ignore, "ResourceNotFoundFault")
    stop = _sdk_call(resource, "Delete")
    assert stop["action"].lower() == "stopreplication" and stop["parameters"] == {"ReplicationConfigArn": arn}
    for benign in ("InvalidResourceStateFault", "ResourceNotFoundFault"):
        assert re.fullmatch(stop["ignoreErrorCodesMatching"], benign)
    assert not re.fullmatch(stop["ignoreErrorCodesMatching"], "AccessDeniedFault")


def test_dms_start_function_may_call_exactly_start_and_stop_on_the_replication(prod: Built) -> None:
    """The function behind the custom resource acts with its own role; IAM allows only what a policy
    grants (dms:StartReplication / dms:StopReplication, resource type ReplicationConfig):
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsdatabasemigrationservice.html
    Its log group is explicit and has a retention (no CDK LogRetention helper)."""
    template = cfn.template(prod, "ingestion")
    replication_id, _ = _one(template, "AWS::DMS::ReplicationConfig")
    _, resource = _start_replication(template)
    function = cfn.resolve(prod, "ingestion", resource["Properties"]["ServiceToken"])
    assert function is not None
    props = function.resource(prod)["Properties"]
    role = cfn.resolve(prod, "ingestion", props["Role"])
    assert role is not None
    granted = [s for p in _resources(template, "AWS::IAM::Policy").values()
               if {"Ref": role.logical_id} in p["Properties"]["Roles"]
               for s in cfn.statements(p["Properties"]["PolicyDocument"])]
    assert granted and all(s["Effect"] == "Allow" for s in granted)
    assert sorted(a for s in granted for a in cfn.as_list(s["Action"])) == ["dms:StartReplication",
                                                                           "dms:StopReplication"]
    assert all(cfn.as_list(s["Resource"]) == [{"Fn::GetAtt": [replication_id, "ReplicationConfigArn"]}]
               for s in granted)

    group = cfn.resolve(prod, "ingestion", props["LoggingConfig"]["LogGroup"])
    assert group is not None and group.resource(prod)["Properties"].get("RetentionInDays")
    assert not _resources(template, "Custom::LogRetention")


# --- Aurora ---------------------------------------------------------------------------------------

def _aurora_version(engine_version: str) -> tuple[int, ...]:
    """"8.0.mysql_aurora.3.10.3" -> (3, 10, 3)."""
    match = re.fullmatch(r"8\.0\.mysql_aurora\.(\d+)\.(\d+)\.(\d+)", engine_version)
    assert match, engine_version
    return tuple(int(g) for g in match.groups())


def test_aurora_engine_version_is_the_one_constant(variant: Built) -> None:
    """One definition of the engine version (stacks/analytics.py), the one every variant deploys."""
    from stacks.analytics import AURORA_MYSQL_VERSION

    _, cluster = _one(cfn.template(variant, "analytics"), "AWS::RDS::DBCluster")
    assert cluster["Properties"]["EngineVersion"] == AURORA_MYSQL_VERSION.aurora_mysql_full_version


def test_aurora_engine_version_is_lts_and_supports_serverless_v2_and_the_data_api() -> None:
    """- Serverless v2 with Aurora MySQL: "Version 3.02.0 and higher" (3.04.3 / 3.08.0 and higher in the
      newest Regions):
      https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Concepts.Aurora_Fea_Regions_DB-eng.Feature.ServerlessV2.html
    - Data API with Aurora MySQL Serverless v2 and provisioned: "Version 3.07 and higher":
      https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Concepts.Aurora_Fea_Regions_DB-eng.Feature.Data_API.html
    - Creatable for years, not months: a long-term-support minor ("Aurora MySQL version 3.10.*" and
      "3.04.*" are the current LTS releases), so a redeploy next year still finds it:
      https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Update.SpecialVersions.html
    Check what a Region offers today: aws rds describe-db-engine-versions --engine aurora-mysql."""
    from stacks.analytics import AURORA_MYSQL_VERSION

    version = _aurora_version(AURORA_MYSQL_VERSION.aurora_mysql_full_version)
    assert version >= (3, 2, 0), "Aurora Serverless v2 (the writer is db.serverless)"
    assert version >= (3, 7, 0), "the Data API (the cluster sets EnableHttpEndpoint)"
    assert version[:2] in {(3, 4), (3, 10)}, "not a long-term-support minor"


def test_analytics_has_no_log_retention_helper(variant: Built) -> None:
    """An explicit log group does the job of CDK's LogRetention Lambda (cloudwatch_logs_retention):
    "If a log group with the specified name exists, Aurora uses that log group to export log data":
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Integrating.CloudWatch.html"""
    template = cfn.template(variant, "analytics")
    assert not _resources(template, "Custom::LogRetention")
    assert not [k for k in template["Resources"] if k.startswith("LogRetention")]


def test_each_exported_aurora_log_has_its_own_encrypted_log_group(variant: Built) -> None:
    """Aurora exports each log type to "/aws/rds/cluster/cluster-name/log_type" and uses that group if it
    already exists: https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Integrating.CloudWatch.html
    So the groups are created first (the cluster depends on them) under the cluster's fixed identifier,
    lower case since "This parameter is stored as a lowercase string":
    https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/rds/aws.sdk.kotlin.services.rds.model/-create-db-cluster-request/db-cluster-identifier.html"""
    template = cfn.template(variant, "analytics")
    _, cluster = _one(template, "AWS::RDS::DBCluster")
    identifier = cluster["Properties"].get("DBClusterIdentifier")
    assert isinstance(identifier, str) and identifier == identifier.lower(), identifier
    exported = cluster["Properties"]["EnableCloudwatchLogsExports"]
    assert sorted(exported) == sorted(EXPORTED_LOGS)
    groups = {r["Properties"].get("LogGroupName"): k for k, r in _resources(template, "AWS::Logs::LogGroup").items()}
    for log_type in exported:
        name = f"/aws/rds/cluster/{identifier}/{log_type}"
        assert name in groups, f"no log group {name}"
        group = template["Resources"][groups[name]]["Properties"]
        assert group.get("RetentionInDays") and group.get("KmsKeyId")
        assert groups[name] in _depends_on(cluster), f"the cluster may be created before {name}"

"""Fine-grained assertions per stack: encryption, policies, wiring, the trigger path, grants."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from glue_jobs import contracts as c
from tests.infra.conftest import Built

pytestmark = pytest.mark.infra


def resources(built: Built, stack: str, kind: str) -> dict[str, Any]:
    return built.templates[stack].find_resources(kind)


def test_data_buckets_use_the_kms_key_tls_only_and_no_public_access(dev: Built) -> None:
    buckets = resources(dev, "storage", "AWS::S3::Bucket")
    data = {k: v for k, v in buckets.items() if not k.startswith("AccessLogs")}
    assert {k[:3] for k in data} == {"Raw", "Cur", "Art"}
    for bucket in data.values():
        props = bucket["Properties"]
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert "KMSMasterKeyID" in sse["ServerSideEncryptionByDefault"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
        assert "DestinationBucketName" in props["LoggingConfiguration"]
        assert props["LifecycleConfiguration"]["Rules"]
    policies = resources(dev, "storage", "AWS::S3::BucketPolicy")
    tls = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
           if s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert len(tls) == len(buckets)  # every bucket, the log bucket too, denies plain HTTP
    assert all(s["Effect"] == "Deny" for s in tls)
    dev.templates["storage"].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_raw_bucket_feeds_eventbridge_and_the_rule_starts_the_workflow(dev: Built) -> None:
    dev.templates["storage"].has_resource_properties(
        "Custom::S3BucketNotifications", {"NotificationConfiguration": {"EventBridgeConfiguration": {}}})
    rules = resources(dev, "training", "AWS::Events::Rule")
    (rule,) = [r for r in rules.values() if "Object Created" in json.dumps(r)]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "ratings/"}, {"prefix": "dms/"}]
    assert "recsys-dev-raw-" in json.dumps(pattern["detail"]["bucket"])
    target = rule["Properties"]["Targets"][0]
    assert ":workflow/" in json.dumps(target["Arn"]) and "RoleArn" in target
    role_policies = [p for p in resources(dev, "training", "AWS::IAM::Policy").values()
                     if "glue:notifyEvent" in json.dumps(p)]
    assert len(role_policies) == 1
    trigger = dev.templates["training"].find_resources("AWS::Glue::Trigger", {"Properties": {"Type": "EVENT"}})
    (props,) = [t["Properties"] for t in trigger.values()]
    assert props["EventBatchingCondition"] == {"BatchSize": dev.settings.job.trigger_batch_size,
                                               "BatchWindow": dev.settings.job.trigger_batch_window_s}


def test_glue_job_runs_glue_5_1_encrypted_in_the_vpc_with_the_job_options(dev: Built) -> None:
    (job,) = resources(dev, "training", "AWS::Glue::Job").values()
    props = job["Properties"]
    assert props["GlueVersion"] == "5.1" and props["Command"]["PythonVersion"] == "3"
    assert props["ExecutionProperty"]["MaxConcurrentRuns"] == 1
    assert props["WorkerType"] == "G.1X" and props["NumberOfWorkers"] == 2
    assert props["SecurityConfiguration"] and props["Connections"]["Connections"]
    args = props["DefaultArguments"]
    assert {"--input", "--runs-root", "--dynamodb-table", "--aurora-secret-arn", "--checkpoint-dir",
            "--extra-py-files"} <= set(args)
    (sec,) = resources(dev, "training", "AWS::Glue::SecurityConfiguration").values()
    enc = sec["Properties"]["EncryptionConfiguration"]
    assert enc["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"
    assert enc["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert enc["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"


def statements(built: Built, stack: str, role_prefix: str) -> list[dict[str, Any]]:
    out = []
    for policy in resources(built, stack, "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"].get("Roles", []))
        if role_prefix in roles:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_job_role_is_least_privilege(dev: Built) -> None:
    stmts = statements(dev, "training", "JobRole")
    assert stmts
    for s in stmts:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), s
        assert s["Resource"] != "*", s
    ddb = [s for s in stmts if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    assert len(ddb) == 1 and "DeleteItem" not in json.dumps(ddb) and "Scan" not in json.dumps(ddb)
    s3_resources = json.dumps([s["Resource"] for s in stmts if "s3:" in json.dumps(s["Action"])])
    for purpose in ("raw", "curated", "artifacts"):
        assert f"recsys-dev-{purpose}-" in s3_resources
    writes = [s for s in stmts if "s3:PutObject" in json.dumps(s["Action"])]
    assert "recsys-dev-raw-" not in json.dumps(writes), "the job must not write to the raw bucket"


def test_table_matches_the_serving_contract(dev: Built, prod: Built) -> None:
    dev.templates["serving"].has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": c.DDB_PARTITION_KEY, "KeyType": "HASH"},
                      {"AttributeName": c.DDB_SORT_KEY, "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
        "TimeToLiveSpecification": {"AttributeName": c.DDB_TTL_ATTRIBUTE, "Enabled": True},
        "DeletionProtectionEnabled": False})
    prod.templates["serving"].has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True})
    prod.templates["serving"].has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})


def test_api_is_not_public_iam_by_default_jwt_when_configured(dev: Built, prod: Built) -> None:
    routes = resources(dev, "serving", "AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {
        "GET /users/{user_id}/recommendations", "GET /artists/{artist_id}/similar", "GET /runs/active", "GET /health"}
    assert {r["Properties"]["AuthorizationType"] for r in routes.values()} == {"AWS_IAM"}
    prod_routes = resources(prod, "serving", "AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["AuthorizationType"] for r in prod_routes.values()} == {"JWT"}
    prod.templates["serving"].has_resource_properties("AWS::ApiGatewayV2::Authorizer", {
        "AuthorizerType": "JWT", "JwtConfiguration": {"Issuer": "https://auth.example.com/", "Audience": ["recs-api"]}})
    dev.templates["serving"].has_resource_properties("AWS::ApiGatewayV2::Stage", {
        "AccessLogSettings": {"DestinationArn": Match.any_value(), "Format": Match.string_like_regexp("requestId")}})
    fn = dev.templates["serving"].find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.recommendations_api.handler.handler"}})
    (props,) = [f["Properties"] for f in fn.values()]
    assert props["Runtime"] == "python3.14" and props["TracingConfig"] == {"Mode": "Active"}
    reads = statements(dev, "serving", "ApiFunction")
    assert not [s for s in reads if "dynamodb:PutItem" in json.dumps(s) or "dynamodb:BatchWriteItem" in json.dumps(s)]


def test_aurora_is_private_encrypted_rotated_and_protected_in_prod(dev: Built, prod: Built) -> None:
    t = dev.templates["analytics"]
    t.has_resource_properties("AWS::RDS::DBCluster", {
        "Engine": "aurora-mysql", "StorageEncrypted": True, "EnableIAMDatabaseAuthentication": True,
        "EnableHttpEndpoint": True, "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4},
        "EnableCloudwatchLogsExports": ["error", "general", "slowquery", "audit"], "DeletionProtection": False})
    t.has_resource_properties("AWS::SecretsManager::RotationSchedule", {
        "RotationRules": {"ScheduleExpression": "rate(30 days)"}})
    t.has_resource_properties("AWS::RDS::DBInstance", {"PubliclyAccessible": False})
    prod.templates["analytics"].has_resource("AWS::RDS::DBCluster", {
        "DeletionPolicy": "Snapshot", "Properties": {"DeletionProtection": True,
                                                     "BackupRetentionPeriod": 30}})


def test_network_uses_endpoints_not_nat_or_imports_an_existing_vpc(dev: Built, prod: Built) -> None:
    t = dev.templates["network"]
    t.resource_count_is("AWS::EC2::NatGateway", 0)
    services = json.dumps([e["Properties"]["ServiceName"] for e in
                           t.find_resources("AWS::EC2::VPCEndpoint").values()])
    for name in ("s3", "dynamodb", "secretsmanager", "logs", "glue"):
        assert f".{name}" in services
    t.resource_count_is("AWS::EC2::FlowLog", 1)
    assert "network" not in prod.stacks  # an existing VPC is imported, not created
    assert "subnet-0123456789abcdef1" in json.dumps(prod.templates["training"].to_json())


def test_monitoring_alarms_notify_the_failure_topic(dev: Built) -> None:
    t = dev.templates["monitoring"]
    t.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    alarms = t.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 3 and all(a["Properties"]["AlarmActions"] for a in alarms.values())
    t.has_resource_properties("AWS::Events::Rule", {"EventPattern": {
        "source": ["aws.glue"], "detail": {"state": ["FAILED", "TIMEOUT", "ERROR"], "jobName": Match.any_value()}},
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp("FailureNotifier"), "Arn"]},
                                       "RetryPolicy": {"MaximumRetryAttempts": 2}})]})
    t.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "lambdas.failure_notifier.handler.handler",
        "Environment": {"Variables": Match.object_like({"TOPIC_ARN": Match.any_value()})}})
    t.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_log_groups_have_retention(dev: Built) -> None:
    from stacks.analytics import EXPORTED_LOGS

    groups = {f"{key}/{name[:-8]}": group for key, template in dev.templates.items()  # without the id's hash
              for name, group in template.find_resources("AWS::Logs::LogGroup").items()}
    # Each function's own group, the API's access logs, the VPC's flow logs and Aurora's exports:
    # none is left to AWS to create without a retention.
    assert set(groups) == {"network/FlowLogs", "serving/ApiLogs", "serving/ApiAccessLogs", "serving/RollbackLogs",
                           "analytics/SchemaSetupLogs", "monitoring/FailureNotifierLogs",
                           *(f"analytics/AuroraLogs{log_type.capitalize()}" for log_type in EXPORTED_LOGS)}
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == dev.settings.log_retention_days, name


def test_dms_writes_exactly_the_layout_the_job_reads_and_training_follows_it(dev: Built, prod: Built) -> None:
    assert "ingestion" not in dev.stacks  # opt-in
    t = prod.templates["ingestion"]
    target = t.find_resources("AWS::DMS::Endpoint", {"Properties": {"EndpointType": "target"}})
    (s3_settings,) = [e["Properties"]["S3Settings"] for e in target.values()]
    expected = c.DMS_TARGET_SETTINGS
    assert s3_settings["AddColumnName"] is expected["AddColumnName"] is True
    assert s3_settings["IncludeOpForFullLoad"] is expected["IncludeOpForFullLoad"] is True
    assert s3_settings["TimestampColumnName"] == expected["TimestampColumnName"] == c.DMS_TIMESTAMP_COLUMN
    assert s3_settings["DataFormat"] == "csv" and s3_settings["CdcInsertsOnly"] is False
    assert s3_settings["BucketFolder"] == "dms" and s3_settings["EncryptionMode"] == "SSE_KMS"
    source = t.find_resources("AWS::DMS::Endpoint", {"Properties": {"EndpointType": "source"}})
    (props,) = [e["Properties"] for e in source.values()]
    assert props["EngineName"] == "mysql" and props["SslMode"] == "require"
    assert props["MySqlSettings"]["SecretsManagerSecretId"].startswith("arn:aws:secretsmanager:")
    t.has_resource_properties("AWS::DMS::ReplicationConfig", {
        "ReplicationType": "full-load-and-cdc",
        "TableMappings": {"rules": [Match.object_like({"object-locator": {"schema-name": "music",
                                                                         "table-name": "ratings"}})]}})
    t.has_resource_properties("AWS::IAM::Role", {"RoleName": "dms-vpc-role"})
    (job,) = resources(prod, "training", "AWS::Glue::Job").values()
    assert "dms/music/ratings/" in json.dumps(job["Properties"]["DefaultArguments"]["--input"])


def test_schema_is_set_up_at_deploy_time_by_the_jobs_migrations(dev: Built) -> None:
    from glue_jobs.recommender.publish.aurora import MIGRATIONS

    t = dev.templates["analytics"]
    (resource,) = t.find_resources("Custom::AuroraSchema").values()
    assert resource["Properties"]["SchemaVersion"] == str(max(v for v, _ in MIGRATIONS))
    functions = t.find_resources("AWS::Lambda::Function",
                                 {"Properties": {"Handler": "lambdas.schema_setup.handler.handler"}})
    (fn,) = [f["Properties"] for f in functions.values() if "SECRET_ARN" in json.dumps(f)]
    assert fn["VpcConfig"]["SubnetIds"] and fn["Timeout"] == 300
    ingress = t.find_resources("AWS::EC2::SecurityGroupIngress")
    assert any(i["Properties"]["FromPort"] == 3306 for i in ingress.values())


def test_emr_serverless_runs_the_same_job_from_the_same_trigger(dev: Built, prod: Built) -> None:
    assert "emr" not in dev.stacks  # opt-in
    t = prod.templates["emr"]
    t.has_resource_properties("AWS::EMRServerless::Application", {
        "Type": "SPARK", "ReleaseLabel": Match.string_like_regexp("emr-7"),
        "AutoStopConfiguration": {"Enabled": True, "IdleTimeoutMinutes": 15}})
    (machine,) = t.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert "emr-serverless:startJobRun.sync" in definition
    for option in ("--input", "--runs-root", "--dynamodb-table", "--aurora-secret-arn", "--py-files"):
        assert option in definition
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
    (rule,) = t.find_resources("AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"]["detail-type"] == ["Object Created"]
    # with EMR as the runtime, new data no longer starts the Glue workflow as well
    assert not [r for r in resources(prod, "training", "AWS::Events::Rule").values()
                if "Object Created" in json.dumps(r)]


def test_quicksight_reads_aurora_privately_and_the_latest_run_through_the_manifest(dev: Built, prod: Built) -> None:
    dev.templates["analytics"].resource_count_is("AWS::QuickSight::DataSource", 0)  # opt-in
    t = prod.templates["analytics"]
    t.has_resource_properties("AWS::QuickSight::VPCConnection", {"SubnetIds": Match.any_value()})
    aurora = t.find_resources("AWS::QuickSight::DataSource", {"Properties": {"Type": "AURORA"}})
    (props,) = [d["Properties"] for d in aurora.values()]
    assert "VpcConnectionProperties" in props and props["SslProperties"] == {"DisableSsl": False}
    assert "SecretArn" in props["Credentials"] and "CredentialPair" not in props["Credentials"]
    manifest = t.find_resources("AWS::QuickSight::DataSource", {"Properties": {"Type": "S3"}})
    (s3_props,) = [d["Properties"] for d in manifest.values()]
    location = s3_props["DataSourceParameters"]["S3Parameters"]["ManifestFileLocation"]
    assert location["Key"] == c.QUICKSIGHT_MANIFEST_FILE
    sets = {d["Properties"]["Name"]: d["Properties"] for d in t.find_resources("AWS::QuickSight::DataSet").values()}
    latest = sets["recsys-prod latest recommendations"]["PhysicalTableMap"]["table"]["CustomSql"]
    assert f"JOIN {c.SQL_ARTISTS}" in latest["SqlQuery"] and c.ARTIST_NAME in latest["SqlQuery"]
    assert c.SQL_MODEL_RUNS in sets["recsys-prod model runs"]["PhysicalTableMap"]["table"]["CustomSql"]["SqlQuery"]
    for d in sets.values():
        assert d["Permissions"][0]["Principal"].endswith(":group/default/analysts")


def test_rollback_function_can_flip_the_pointer_and_latest_but_write_nothing_else(dev: Built) -> None:
    stmts = statements(dev, "serving", "RollbackFunction")
    writes = [s for s in stmts if any(a in json.dumps(s["Action"]) for a in ("PutObject", "UpdateItem"))]
    resources_written = json.dumps([s["Resource"] for s in writes])
    assert "latest.json" in resources_written and "quicksight-manifest.json" in resources_written
    assert "runs/*/_SUCCESS" not in json.dumps([s["Resource"] for s in writes if "PutObject" in json.dumps(s)])
    assert not [s for s in stmts if "dynamodb:PutItem" in json.dumps(s) or "dynamodb:BatchWriteItem" in json.dumps(s)]

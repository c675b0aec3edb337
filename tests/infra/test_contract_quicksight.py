"""Deploy-contract rules for QuickSight and for every network path to Aurora: what QuickSight and
EC2 check only when the stack is deployed (or a dashboard first queries), read off the templates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import aurora, files
from stacks import quicksight
from tests.infra.cfn import Ref, as_list, render, resolve, resources_of, statements, template, the_one
from tests.infra.conftest import Built

pytestmark = pytest.mark.infra
ROOT = Path(__file__).resolve().parents[2]
QUICKSIGHT_SECRETS_ROLE = "aws-quicksight-secretsmanager-role-v0"


# --- reading references -----------------------------------------------------------------------

def references(built: Built, stack: str, node: Any) -> set[Ref]:
    """Every resource a template value points at (Ref, GetAtt, ImportValue), at any depth."""
    found: set[Ref] = set()
    if isinstance(node, dict):
        ref = resolve(built, stack, node) if len(node) == 1 else None
        if ref is not None:
            found.add(ref)
        else:
            for value in node.values():
                found |= references(built, stack, value)
    elif isinstance(node, list):
        for value in node:
            found |= references(built, stack, value)
    return found


def kind(built: Built, ref: Ref) -> str:
    return str(ref.resource(built)["Type"])


def security_groups_of(built: Built, ref: Ref) -> set[Ref]:
    """The security groups a resource puts its network interfaces in, whatever the property is
    called (VpcConfig.SecurityGroupIds, SecurityGroupIdList, vpcSecurityGroupIds, ...)."""
    found: set[Ref] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"security_?group", key, re.I):
                    found.update(r for r in references(built, ref.stack, value)
                                 if kind(built, r) == "AWS::EC2::SecurityGroup")
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(ref.resource(built).get("Properties", {}))
    return found


def aurora_cluster(built: Built) -> Ref:
    (cluster,) = [ref for ref, _ in resources_of(built, "AWS::RDS::DBCluster")]
    return cluster


def db_groups(built: Built) -> set[Ref]:
    cluster = aurora_cluster(built)
    return security_groups_of(built, cluster)


def aurora_clients(built: Built) -> dict[Ref, set[Ref]]:
    """Resources configured to reach Aurora (they name its secret, the secret's attachment or the
    cluster's endpoint) -> the security groups their traffic comes from: their own, or those of
    the resource that runs them one reference away (a Glue job's connection, a state machine's
    EMR application, a custom resource's function, a rotation schedule's application)."""
    cluster = aurora_cluster(built)
    attachments = [ref for ref, r in resources_of(built, "AWS::SecretsManager::SecretTargetAttachment")
                   if resolve(built, ref.stack, r["Properties"]["TargetId"]) == cluster]
    seeds = {cluster, *attachments,
             *(resolve(built, a.stack, a.resource(built)["Properties"]["SecretId"]) for a in attachments)}
    servers = db_groups(built)
    clients: dict[Ref, set[Ref]] = {}
    for stack in built.stacks:
        for logical_id, resource in template(built, stack)["Resources"].items():
            ref = Ref(stack, logical_id)
            if ref in seeds or resource["Type"].startswith(("AWS::RDS::", "AWS::EC2::")):
                continue  # the database itself, and the firewall rules under test
            named = references(built, stack, resource.get("Properties", {}))
            if not named & seeds:
                continue
            groups = security_groups_of(built, ref)
            for hop in named - seeds:
                groups |= security_groups_of(built, hop)
            if groups - servers:
                clients[ref] = groups - servers
    return clients


def port_value(built: Built, stack: str, value: Any) -> Any:
    """A port as deployed: the cluster's Endpoint.Port attribute is the cluster's Port."""
    target = resolve(built, stack, value)
    if target is not None and kind(built, target) == "AWS::RDS::DBCluster":
        return target.resource(built)["Properties"].get("Port", 3306)
    return value


def ingress_rules(built: Built, group: Ref) -> Iterator[dict[str, Any]]:
    """Every inbound rule of a group: inline ones and AWS::EC2::SecurityGroupIngress in any stack,
    with ports as numbers and the source group as a Ref."""
    def normal(stack: str, rule: dict[str, Any]) -> dict[str, Any]:
        return {"protocol": str(rule.get("IpProtocol")),
                "from": port_value(built, stack, rule.get("FromPort")),
                "to": port_value(built, stack, rule.get("ToPort")),
                "source": resolve(built, stack, rule.get("SourceSecurityGroupId"))}

    for rule in group.resource(built)["Properties"].get("SecurityGroupIngress", []):
        yield normal(group.stack, rule)
    for ref, resource in resources_of(built, "AWS::EC2::SecurityGroupIngress"):
        if resolve(built, ref.stack, resource["Properties"]["GroupId"]) == group:
            yield normal(ref.stack, resource["Properties"])


def allows(rule: dict[str, Any], source: Ref, low: int, high: int) -> bool:
    if rule["source"] != source:
        return False
    if rule["protocol"] == "-1":
        return True
    return rule["protocol"] == "tcp" and isinstance(rule["from"], int) and isinstance(rule["to"], int) \
        and rule["from"] <= low and high <= rule["to"]


# --- security groups --------------------------------------------------------------------------

def test_every_aurora_client_can_reach_the_database_port(variant: Built) -> None:
    """Security groups deny by default: each group whose members open connections to Aurora needs
    an inbound rule on the database's group for its port. The clients are derived from the
    templates (whatever names the DB secret or endpoint and runs in the VPC), so a new client
    without the rule fails here. Expected today: the Glue job, the schema-setup function, the
    secret's rotation function; with every option also QuickSight and the EMR workers.
    https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html ("no inbound rules ...
    no inbound traffic is allowed until you add inbound rules")
    https://docs.aws.amazon.com/quicksight/latest/user/vpc-security-groups.html (the database's group
    must allow inbound from QuickSight's)"""
    clients = aurora_clients(variant)
    expected = {"AWS::Glue::Job", "Custom::AuroraSchema", "AWS::SecretsManager::RotationSchedule"}
    if variant.settings.analytics.quicksight_principal_arn:
        expected |= {"AWS::QuickSight::DataSource"}
    if variant.settings.job.emr:
        expected |= {"AWS::StepFunctions::StateMachine"}
    assert expected <= {kind(variant, ref) for ref in clients}, "a known client was not derived"
    (server,) = db_groups(variant)
    port = aurora_cluster(variant).resource(variant)["Properties"].get("Port", 3306)
    rules = list(ingress_rules(variant, server))
    missing = {f"{ref.stack}/{ref.logical_id} via {group.logical_id}"
               for ref, groups in clients.items() for group in groups
               if not any(allows(rule, group, port, port) for rule in rules)}
    assert not missing, f"no inbound rule on the database's group for port {port} from: {sorted(missing)}"


def test_quicksight_group_accepts_return_traffic_from_the_database(prod: Built) -> None:
    """QuickSight's network interfaces are not stateful: replies from the database arrive on random
    ports and are dropped unless QuickSight's group allows all inbound TCP from the database's group.
    https://docs.aws.amazon.com/quicksight/latest/user/vpc-security-groups.html
    https://docs.aws.amazon.com/quicksight/latest/user/vpc-inbound-rules.html"""
    (_, connection), = list(resources_of(prod, "AWS::QuickSight::VPCConnection"))
    (server,) = db_groups(prod)
    for value in connection["Properties"]["SecurityGroupIds"]:
        group = resolve(prod, "analytics", value)
        assert group is not None
        assert any(allows(rule, server, 0, 65535) for rule in ingress_rules(prod, group)), \
            f"{group.logical_id} does not accept TCP 0-65535 from the database's group"


# --- secrets and keys -------------------------------------------------------------------------

def test_quicksight_secrets_role_can_decrypt_the_database_secret(prod: Built) -> None:
    """QuickSight reads data-source secrets as aws-quicksight-secretsmanager-role-v0; a secret
    encrypted with a customer managed key can only be read by a caller that also has kms:Decrypt
    on that key.
    https://docs.aws.amazon.com/quicksight/latest/user/secrets-manager-integration.html
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html"""
    (_, source) = the_one(prod, "AWS::QuickSight::DataSource", Type="AURORA")
    attachment = resolve(prod, "analytics", source["Properties"]["Credentials"]["SecretArn"])
    assert attachment is not None
    secret = resolve(prod, attachment.stack, attachment.resource(prod)["Properties"]["SecretId"])
    assert secret is not None
    key = resolve(prod, secret.stack, secret.resource(prod)["Properties"]["KmsKeyId"])
    assert key is not None, "the secret is expected to use the project's key"
    granted = [s for ref, policy in resources_of(prod, "AWS::IAM::Policy")
               if QUICKSIGHT_SECRETS_ROLE in [render(r) for r in policy["Properties"].get("Roles", [])]
               for s in statements(policy["Properties"]["PolicyDocument"])
               if s["Effect"] == "Allow" and "kms:Decrypt" in as_list(s["Action"])
               and key in {resolve(prod, ref.stack, r) for r in as_list(s["Resource"])}]
    assert granted, f"{QUICKSIGHT_SECRETS_ROLE} has no kms:Decrypt on the secret's key"
    # An IAM policy only counts if the key policy lets the account's IAM policies grant the key.
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
    delegates = [s for s in statements(key.resource(prod)["Properties"]["KeyPolicy"])
                 if s["Effect"] == "Allow" and "Condition" not in s
                 and render(s.get("Principal", {}).get("AWS", "")).endswith(":root")
                 and {"kms:*", "kms:Decrypt"} & set(as_list(s["Action"]))]
    assert delegates, "the key policy does not delegate to IAM policies in the account"


# --- ordering ---------------------------------------------------------------------------------

def test_data_sets_wait_for_the_schema_and_the_writer_instance(prod: Built) -> None:
    """DIRECT_QUERY data sets with custom SQL are checked against the database when created: the
    tables (made by the schema custom resource) and a writer to answer must exist first. Only
    DependsOn (or a reference) orders creation in CloudFormation.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html
    https://docs.aws.amazon.com/quicksight/latest/APIReference/API_CustomSql.html"""
    t = template(prod, "analytics")["Resources"]
    (schema,) = [k for k, r in t.items() if r["Type"] == "Custom::AuroraSchema"]
    (writer,) = [k for k, r in t.items() if r["Type"] == "AWS::RDS::DBInstance"]
    data_sets = {k: r for k, r in t.items() if r["Type"] == "AWS::QuickSight::DataSet"}
    assert len(data_sets) == 3
    for logical_id, data_set in data_sets.items():
        depends = set(as_list(data_set.get("DependsOn", [])))
        assert {schema, writer} <= depends, f"{logical_id} DependsOn {sorted(depends)}"


def test_similar_artists_data_set_reads_the_swapped_table_through_aurora(prod: Built, dev: Built) -> None:
    """The similar-artists data set queries the live similar_artists table (the one the Aurora sink
    swaps in with the recommendations) joined twice with artists' names, over the Aurora source,
    and declares the columns that SQL returns (checked on MariaDB in tests/publish); DIRECT_QUERY
    custom SQL is validated when the data set is created.
    https://docs.aws.amazon.com/quicksight/latest/APIReference/API_CustomSql.html"""
    assert not list(resources_of(dev, "AWS::QuickSight::DataSet"))  # opt-in
    ((ref, sql, data_set),) = [(ref, table["CustomSql"], r) for ref, r in resources_of(prod, "AWS::QuickSight::DataSet")
                               for table in r["Properties"]["PhysicalTableMap"].values()
                               if table["CustomSql"]["SqlQuery"] == quicksight.SIMILAR_SQL]
    assert data_set["Properties"]["ImportMode"] == "DIRECT_QUERY"
    assert re.search(rf"\bFROM {c.SQL_SIMILAR_ARTISTS} s\b", sql["SqlQuery"])
    assert [(col["Name"], col["Type"]) for col in sql["Columns"]] == [tuple(col) for col in quicksight.SIMILAR_COLUMNS]
    source = resolve(prod, ref.stack, sql["DataSourceArn"])
    assert source is not None and source.resource(prod)["Properties"]["Type"] == "AURORA"
    (permission,) = data_set["Properties"]["Permissions"]
    assert permission["Principal"].endswith(":group/default/analysts")
    assert set(permission["Actions"]) == set(quicksight.DATA_SET_ACTIONS)


# --- the S3 manifest data source --------------------------------------------------------------

def test_manifest_source_waits_for_a_placeholder_written_only_if_absent(prod: Built) -> None:
    """QuickSight reads the manifest when the S3 data source is created, and the manifest must be a
    valid QuickSight manifest: a placeholder is written at deploy time (the job's own builder, so
    one format) with a conditional put that never replaces a real run's manifest, by a function
    that may write it into the KMS-encrypted bucket (kms:GenerateDataKey on the bucket's key).
    https://docs.aws.amazon.com/quicksight/latest/user/supported-manifest-file-format.html
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-express-UsingKMSEncryption.html (uploading an
    object encrypted with a KMS key needs kms:GenerateDataKey on it)"""
    t = template(prod, "analytics")["Resources"]
    (_, source) = the_one(prod, "AWS::QuickSight::DataSource", Type="S3")
    location = source["Properties"]["DataSourceParameters"]["S3Parameters"]["ManifestFileLocation"]
    bucket = render(location["Bucket"])
    placeholders = [d for d in as_list(source.get("DependsOn", [])) if t[d]["Type"].startswith("Custom::")]
    assert placeholders, "the S3 data source does not wait for a placeholder manifest"
    (placeholder,) = placeholders
    props = t[placeholder]["Properties"]
    objects = {o["Key"]: o for o in props["Objects"]}
    assert render(props["Bucket"]) == bucket
    manifest = objects[location["Key"]]
    root = f"s3://{bucket}"
    assert json.loads(render(manifest["Body"])) == files.quicksight_manifest(root, quicksight.PLACEHOLDER_RUN_ID)
    # the manifest's prefix holds a header-only CSV in the job's column order
    (csv_key,) = [k for k in objects if k.endswith(".csv")]
    assert f"{root}/{csv_key}".startswith(files.quicksight_manifest(root, quicksight.PLACEHOLDER_RUN_ID)
                                          ["fileLocations"][0]["URIPrefixes"][0])
    assert render(objects[csv_key]["Body"]).strip() == ",".join(c.RECOMMENDATION_COLUMNS)

    function = resolve(prod, "analytics", props["ServiceToken"])
    assert function is not None and kind(prod, function) == "AWS::Lambda::Function"
    role = resolve(prod, "analytics", function.resource(prod)["Properties"]["Role"])
    stmts = [s for ref, p in resources_of(prod, "AWS::IAM::Policy")
             if role in {resolve(prod, ref.stack, r) for r in p["Properties"].get("Roles", [])}
             for s in statements(p["Properties"]["PolicyDocument"]) if s["Effect"] == "Allow"]
    written = {render(r) for s in stmts if "s3:PutObject" in as_list(s["Action"]) for r in as_list(s["Resource"])}
    assert {f"arn:<AWS::Partition>:s3:::{bucket}/{key}" for key in objects} <= written
    curated = [r for ref, r in resources_of(prod, "AWS::S3::Bucket") if render(r["Properties"].get("BucketName"))
               == bucket]
    (bucket_resource,) = curated
    (rule,) = bucket_resource["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    bucket_key = resolve(prod, "storage", rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    assert bucket_key is not None
    assert any("kms:GenerateDataKey" in as_list(s["Action"])
               and bucket_key in {resolve(prod, "analytics", r) for r in as_list(s["Resource"])} for s in stmts)
    assert "IfNoneMatch" in (ROOT / "lambdas" / "manifest_placeholder" / "handler.py").read_text()


# --- the dashboard ----------------------------------------------------------------------------

READ_ACTIONS = {"quicksight:DescribeDashboard", "quicksight:ListDashboardVersions",
                "quicksight:QueryDashboard"}


def column_identifiers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if set(node) == {"DataSetIdentifier", "ColumnName"}:
            yield node
        for value in node.values():
            yield from column_identifiers(value)
    elif isinstance(node, list):
        for value in node:
            yield from column_identifiers(value)


def test_dashboard_shows_recommendations_artists_and_runs_from_existing_columns(prod: Built, dev: Built) -> None:
    """A dashboard defined in the template: latest recommendations with artist names (table), top
    recommended artists (bar chart), model runs' RMSE against the baselines over time (line chart).
    QuickSight rejects a definition whose visuals name a column its data set does not have, so every
    column a visual uses is checked against the data set's declared columns; the principal gets the
    dashboard's read permissions.
    https://docs.aws.amazon.com/quicksight/latest/APIReference/API_DashboardVersionDefinition.html
    https://docs.aws.amazon.com/quicksight/latest/developerguide/dashboard-permissions.html"""
    assert not list(resources_of(dev, "AWS::QuickSight::Dashboard"))  # opt-in
    (_, dashboard), = list(resources_of(prod, "AWS::QuickSight::Dashboard"))
    definition = dashboard["Properties"]["Definition"]
    data_sets: dict[str, set[str]] = {}
    for declaration in definition["DataSetIdentifierDeclarations"]:
        data_set = resolve(prod, "analytics", declaration["DataSetArn"])
        assert data_set is not None and kind(prod, data_set) == "AWS::QuickSight::DataSet"
        (table,) = data_set.resource(prod)["Properties"]["PhysicalTableMap"].values()
        data_sets[declaration["Identifier"]] = {col["Name"] for col in table["CustomSql"]["Columns"]}
    assert len(data_sets) == 2, "both data sets (latest recommendations, model runs) are used"

    visuals = [v for sheet in definition["Sheets"] for v in sheet["Visuals"]]
    kinds = {next(iter(v)) for v in visuals}
    assert {"TableVisual", "BarChartVisual", "LineChartVisual"} <= kinds
    used = list(column_identifiers(visuals))
    assert used
    unknown = [u for u in used if u["ColumnName"] not in data_sets.get(u["DataSetIdentifier"], set())]
    assert not unknown, f"visuals use columns their data sets do not have: {unknown}"
    by_kind = {next(iter(v)): {u["ColumnName"] for u in column_identifiers(v)} for v in visuals}
    assert c.ARTIST_NAME in by_kind["TableVisual"] and c.ARTIST_NAME in by_kind["BarChartVisual"]
    assert {"rmse", "bias_rmse", "global_mean_rmse"} <= by_kind["LineChartVisual"]

    (permission,) = dashboard["Properties"]["Permissions"]
    assert permission["Principal"].endswith(":group/default/analysts")
    assert set(permission["Actions"]) >= READ_ACTIONS


def test_runs_sql_reads_metric_keys_the_job_writes() -> None:
    """The runs data set turns model_runs.metrics (JSON text) into numeric columns: each JSON path
    must lead to a number in what the job records there (publish/aurora.py's summary of the run's
    metrics, whose baselines are laid out by metrics.Baselines)."""
    from glue_jobs.recommender.metrics import Baselines

    paths = re.findall(r"'\$\.([\w.]+)'", quicksight.RUNS_SQL)
    assert paths
    baselines = Baselines(global_mean_rmse=1.2, bias_rmse=1.1).as_dict()
    recorded = aurora._metric_summary({"rmse": 0.9, "baselines": baselines})
    for path in paths:
        value: Any = recorded
        for part in path.split("."):
            assert isinstance(value, dict) and part in value, path
            value = value[part]
        assert isinstance(value, float), path

"""Ingestion (opt-in): DMS Serverless replicates the operational ratings table (full load +
CDC) into the raw bucket, in exactly the CSV layout the job reads (contracts.DMS_TARGET_SETTINGS)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from aws_cdk import Aws, CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_dms as dms
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from glue_jobs import contracts as c
from stacks.nag import acknowledge, bucket_objects, managed_policy
from stacks.network import ExistingVpc, resolve_vpc
from stacks.storage import bucket_name

DMS_FOLDER = "dms"
# DMS's answers that mean "already in the state asked for": starting a running replication, stopping a
# stopped one (InvalidResourceStateFault), stopping one whose config is already gone (ResourceNotFoundFault).
ALREADY_STARTED = "InvalidResourceStateFault"
ALREADY_STOPPED = "InvalidResourceStateFault|ResourceNotFoundFault"


@dataclass(frozen=True)
class DmsSource:
    """An existing operational database that DMS replicates ratings from (opt-in)."""

    engine: str  # mysql | postgres | aurora | aurora-postgresql | ...
    host: str
    port: int
    database: str
    tables: tuple[str, ...]
    secret_arn: str  # Secrets Manager secret with username/password for DMS
    create_service_roles: bool = False  # dms-vpc-role etc. are account-wide: create once

    @property
    def input_prefix(self) -> str:
        """Where DMS writes the ratings table: <folder>/<schema>/<table>/ (MySQL: schema = database)."""
        return f"{DMS_FOLDER}/{self.database}/{self.tables[0]}/"


class IngestionStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, vpc: ec2.IVpc | ExistingVpc,
                 source: DmsSource, multi_az: bool, log_retention: logs.RetentionDays, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        raw = s3.Bucket.from_bucket_name(self, "Raw", bucket_name(prefix, "raw"))
        vpc_role = self.dms_vpc_role() if source.create_service_roles else None
        target_role = self.target_role(prefix, key, raw)
        secret_role = iam.Role(self, "SecretRole",
                               assumed_by=iam.ServicePrincipal(f"dms.{Aws.REGION}.amazonaws.com"),
                               description="DMS reads the source database credentials")
        secret_role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                      resources=[source.secret_arn]))
        target = self.target_endpoint(key, raw, target_role)
        endpoint = self.source_endpoint(key, source, secret_role)
        self.replication = self.replication_config(prefix, key, vpc, source, endpoint, target, vpc_role,
                                                   multi_az=multi_az)
        self.input_prefix = source.input_prefix
        self.start_replication(prefix, key, log_retention)

    def dms_vpc_role(self) -> iam.Role:
        """Account-wide role DMS looks up by name; created only where it does not exist yet."""
        role = iam.Role(self, "DmsVpcRole", role_name="dms-vpc-role",
                        assumed_by=iam.ServicePrincipal("dms.amazonaws.com"),
                        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                            "service-role/AmazonDMSVPCManagementRole")])
        acknowledge(role, managed_policy("service-role/AmazonDMSVPCManagementRole"),
                    "The policy DMS requires on its account-wide VPC role.")
        return role

    def target_role(self, prefix: str, key: kms.IKey, raw: s3.IBucket) -> iam.Role:
        role = iam.Role(self, "TargetRole", assumed_by=iam.ServicePrincipal("dms.amazonaws.com"),
                        description="DMS writes replicated ratings under dms/ in the raw bucket")
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"],
            resources=[raw.arn_for_objects(f"{DMS_FOLDER}/*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[raw.bucket_arn]))
        key.grant_encrypt_decrypt(role)
        acknowledge(role, bucket_objects(prefix, "raw", f"{DMS_FOLDER}/*"),
                    "DMS names its own files (LOAD*.csv, timestamped CDC files) under its folder only.")
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(role, f"AwsSolutions-IAM5[Action::{action}]", "CDK's key grant, on this project's key only.")
        return role

    def target_endpoint(self, key: kms.IKey, raw: s3.IBucket, role: iam.IRole) -> dms.CfnEndpoint:
        """The raw bucket's dms/ folder, in exactly the CSV layout the job reads."""
        settings = c.DMS_TARGET_SETTINGS
        return dms.CfnEndpoint(
            self, "Target", endpoint_type="target", engine_name="s3",
            s3_settings=dms.CfnEndpoint.S3SettingsProperty(
                bucket_name=raw.bucket_name, bucket_folder=DMS_FOLDER, service_access_role_arn=role.role_arn,
                data_format=str(settings["DataFormat"]), add_column_name=bool(settings["AddColumnName"]),
                include_op_for_full_load=bool(settings["IncludeOpForFullLoad"]),
                timestamp_column_name=str(settings["TimestampColumnName"]),
                csv_delimiter=str(settings["CsvDelimiter"]), csv_row_delimiter=str(settings["CsvRowDelimiter"]),
                cdc_inserts_only=bool(settings["CdcInsertsOnly"]),
                cdc_inserts_and_updates=bool(settings["CdcInsertsAndUpdates"]),
                compression_type=str(settings["CompressionType"]),
                encryption_mode="SSE_KMS", server_side_encryption_kms_key_id=key.key_arn))

    def source_endpoint(self, key: kms.IKey, source: DmsSource, secret_role: iam.IRole) -> dms.CfnEndpoint:
        """The operational database, over TLS, with credentials DMS reads from Secrets Manager."""
        engine = source.engine
        source_settings: dict[str, object] = {
            "secrets_manager_access_role_arn": secret_role.role_arn, "secrets_manager_secret_id": source.secret_arn}
        return dms.CfnEndpoint(
            self, "Source", endpoint_type="source", engine_name=engine, database_name=source.database,
            ssl_mode="require", kms_key_id=key.key_arn,
            my_sql_settings=dms.CfnEndpoint.MySqlSettingsProperty(**source_settings)  # type: ignore[arg-type]
            if engine in ("mysql", "mariadb", "aurora") else None,
            postgre_sql_settings=dms.CfnEndpoint.PostgreSqlSettingsProperty(**source_settings)  # type: ignore[arg-type]
            if engine in ("postgres", "aurora-postgresql") else None)

    def replication_config(self, prefix: str, key: kms.IKey, vpc: ec2.IVpc, source: DmsSource,
                           source_endpoint: dms.CfnEndpoint, target: dms.CfnEndpoint, vpc_role: iam.Role | None,
                           *, multi_az: bool) -> dms.CfnReplicationConfig:
        """DMS Serverless in the private subnets: a full load, then ongoing changes, of the source's tables."""
        subnets = dms.CfnReplicationSubnetGroup(
            self, "Subnets", replication_subnet_group_description="Private subnets for DMS Serverless",
            subnet_ids=[s.subnet_id for s in vpc.isolated_subnets])
        if vpc_role is not None:
            # DMS rejects the subnet group while dms-vpc-role does not exist, and nothing else orders them.
            subnets.node.add_dependency(vpc_role)
        group = ec2.SecurityGroup(self, "DmsSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="DMS Serverless: outbound to the source database and AWS APIs")
        mappings = {"rules": [
            {"rule-type": "selection", "rule-id": str(i + 1), "rule-name": f"include-{table}",
             "object-locator": {"schema-name": source.database, "table-name": table}, "rule-action": "include"}
            for i, table in enumerate(source.tables)]}
        return dms.CfnReplicationConfig(
            self, "Replication", replication_config_identifier=f"{prefix}-ratings",
            replication_type="full-load-and-cdc", source_endpoint_arn=source_endpoint.ref,
            target_endpoint_arn=target.ref, table_mappings=json.loads(json.dumps(mappings)),
            compute_config=dms.CfnReplicationConfig.ComputeConfigProperty(
                max_capacity_units=4, min_capacity_units=1, multi_az=multi_az, kms_key_id=key.key_arn,
                replication_subnet_group_id=subnets.ref, vpc_security_group_ids=[group.security_group_id]))

    def start_replication(self, prefix: str, key: kms.IKey, log_retention: logs.RetentionDays) -> None:
        """A replication config does nothing until StartReplication: start it after deploy (and again
        if the config is replaced), stop it before the config is deleted. Both calls are idempotent."""
        arn = self.replication.attr_replication_config_arn
        CfnOutput(self, "ReplicationConfigArn", value=arn,
                  description="aws dms describe-replications --filters Name=replication-config-arn,Values=<this>")
        start = cr.AwsSdkCall(service="DatabaseMigrationService", action="startReplication",
                              parameters={"ReplicationConfigArn": arn, "StartReplicationType": "start-replication"},
                              physical_resource_id=cr.PhysicalResourceId.of(f"{prefix}-ratings-replication"),
                              ignore_error_codes_matching=ALREADY_STARTED)
        stop = cr.AwsSdkCall(service="DatabaseMigrationService", action="stopReplication",
                             parameters={"ReplicationConfigArn": arn}, ignore_error_codes_matching=ALREADY_STOPPED)
        log_group = logs.LogGroup(self, "StartReplicationLogs", retention=log_retention, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        resource = cr.AwsCustomResource(
            self, "StartReplication", resource_type="Custom::DmsStartReplication",
            on_create=start, on_update=start, on_delete=stop, install_latest_aws_sdk=False, log_group=log_group,
            policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                actions=["dms:StartReplication", "dms:StopReplication"], resources=[arn])]))
        # The role of CDK's provider function (a Node.js runtime CDK picks).
        acknowledge(cast(IConstruct, resource.grant_principal),
                    managed_policy("service-role/AWSLambdaBasicExecutionRole"),
                    "CDK's AwsCustomResource function writes only its own logs with this policy.")

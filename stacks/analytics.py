"""Analytics: Aurora MySQL Serverless v2 in isolated subnets behind the QuickSight dashboards."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from glue_jobs import contracts as c
from stacks import names
from stacks.constructs import VENDORED, PythonFunction
from stacks.nag import acknowledge
from stacks.network import ExistingVpc, resolve_vpc
from stacks.options import option
from stacks.quicksight import SECRETS_MANAGER_ROLE, QuickSightAnalytics

DATABASE_NAME = "recommender"
# The one engine version: an LTS minor (3.10), with Serverless v2 (3.02.0+) and the Data API (3.07+).
# What a Region can create today: aws rds describe-db-engine-versions --engine aurora-mysql
AURORA_MYSQL_VERSION = rds.AuroraMysqlEngineVersion.VER_3_10_3
# The log types the cluster exports; Aurora writes each to /aws/rds/cluster/<identifier>/<type>.
EXPORTED_LOGS = ("error", "general", "slowquery", "audit")


def cluster_identifier(prefix: str) -> str:
    """Fixed (the exported log groups are named after it) and lower case, as RDS stores it."""
    return f"{prefix}-aurora".lower()


@dataclass(frozen=True)
class AnalyticsOptions:
    """Aurora's capacity, and who analyses the results in QuickSight (None: no QuickSight resources)."""

    min_acu: float = option("auroraMinAcu", 0.5)
    max_acu: float = option("auroraMaxAcu", 4.0)
    quicksight_principal_arn: str | None = option("quicksightPrincipalArn", None)

    def problems(self) -> list[str]:
        if not 0.5 <= self.min_acu <= self.max_acu:
            return ["auroraMinAcu must be at least 0.5 and not above auroraMaxAcu"]
        return []


class AnalyticsStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, vpc: ec2.IVpc | ExistingVpc,
                 retain_data: bool, deletion_protection: bool, log_retention: logs.RetentionDays,
                 options: AnalyticsOptions, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        self.security_group = ec2.SecurityGroup(self, "DbSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                                description="Aurora: reachable only from the job and schema setup")
        self.cluster = self.aurora(prefix, key, vpc, options, retain_data=retain_data,
                                   deletion_protection=deletion_protection, log_retention=log_retention)
        self.secret = self.cluster.secret
        self.schema_setup(key, vpc, log_retention)
        if options.quicksight_principal_arn and self.secret:
            self.quicksight = self.quicksight_analytics(prefix, key, vpc, self.secret,
                                                        options.quicksight_principal_arn, log_retention)
        CfnOutput(self, "ClusterEndpoint", value=self.cluster.cluster_endpoint.hostname)
        # For Data API callers (make smoke): the ARNs, never the credentials themselves.
        CfnOutput(self, names.OUTPUT_CLUSTER_ARN, value=self.cluster.cluster_arn)
        if self.secret:
            CfnOutput(self, names.OUTPUT_SECRET_ARN, value=self.secret.secret_arn)
        CfnOutput(self, names.OUTPUT_DATABASE, value=DATABASE_NAME)

    def aurora(self, prefix: str, key: kms.IKey, vpc: ec2.IVpc, options: AnalyticsOptions, *, retain_data: bool,
               deletion_protection: bool, log_retention: logs.RetentionDays) -> rds.DatabaseCluster:
        """Serverless v2 in isolated subnets, its credentials rotated, its logs in groups of our own."""
        identifier = cluster_identifier(prefix)
        # Explicit groups (retention, the project's key) that Aurora exports into, instead of CDK's
        # LogRetention function editing the groups RDS would create itself.
        log_groups = [logs.LogGroup(self, f"AuroraLogs{log_type.capitalize()}",
                                    log_group_name=f"/aws/rds/cluster/{identifier}/{log_type}",
                                    retention=log_retention, encryption_key=key,
                                    removal_policy=RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY)
                      for log_type in EXPORTED_LOGS]
        cluster = rds.DatabaseCluster(
            self, "Aurora", engine=rds.DatabaseClusterEngine.aurora_mysql(version=AURORA_MYSQL_VERSION),
            cluster_identifier=identifier,
            credentials=rds.Credentials.from_generated_secret("recommender_admin", encryption_key=key,
                                                              secret_name=f"{prefix}/aurora/admin"),
            default_database_name=DATABASE_NAME, writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=options.min_acu, serverless_v2_max_capacity=options.max_acu,
            vpc=vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group], storage_encryption_key=key,
            iam_authentication=True, enable_data_api=True, deletion_protection=deletion_protection,
            backup=rds.BackupProps(retention=Duration.days(7 if not retain_data else 30)),
            cloudwatch_logs_exports=list(EXPORTED_LOGS), port=3306,
            removal_policy=RemovalPolicy.SNAPSHOT if retain_data else RemovalPolicy.DESTROY)
        for log_group in log_groups:
            cluster.node.default_child.node.add_dependency(log_group)  # type: ignore[union-attr]
        cluster.add_rotation_single_user(automatically_after=Duration.days(30),
                                         vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))
        acknowledge(cluster, "AwsSolutions-RDS11",
                    "MySQL's default port: the cluster is only reachable from named security groups "
                    "inside isolated subnets, and QuickSight's VPC connection expects it.")
        acknowledge(cluster, "AwsSolutions-RDS14",
                    "Backtrack is not available for Aurora Serverless v2; point-in-time restore is.")
        if not deletion_protection:
            acknowledge(cluster, "AwsSolutions-RDS10",
                        "Deletion protection is off only in dev, which is meant to be torn down; "
                        "-c env=prod turns it on.")
        return cluster

    def quicksight_analytics(self, prefix: str, key: kms.IKey, vpc: ec2.IVpc, secret: secretsmanager.ISecret,
                             principal_arn: str, log_retention: logs.RetentionDays) -> QuickSightAnalytics:
        """QuickSight reads the credentials with its own Secrets Manager role (enable Secrets Manager
        access in QuickSight's admin settings once per account)."""
        readable = secret.add_to_resource_policy(iam.PolicyStatement(
            actions=["secretsmanager:GetSecretValue"], resources=["*"],
            principals=[iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/service-role/"
                                         f"{SECRETS_MANAGER_ROLE}")]))
        quicksight = QuickSightAnalytics(
            self, "QuickSight", prefix=prefix, principal_arn=principal_arn, vpc=vpc,
            cluster=self.cluster, db_security_group=self.security_group, secret_arn=secret.secret_arn,
            key=key, database=DATABASE_NAME, schema=self.node.find_child("Schema"),
            writer=self.cluster.node.find_child("Writer"), log_retention=log_retention)
        if readable.policy_dependable is not None:  # QuickSight reads the secret when it creates the source
            quicksight.node.find_child("AuroraSource").node.add_dependency(readable.policy_dependable)
        return quicksight

    def schema_setup(self, key: kms.IKey, vpc: ec2.IVpc, log_retention: logs.RetentionDays) -> None:
        """Runs the job's own migrations at deploy time (a custom resource), so dashboards have
        their tables before the first training run; re-runs when a migration is added."""
        group = ec2.SecurityGroup(self, "SchemaSetupSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="Schema setup function: to Aurora and AWS endpoints")
        self.security_group.add_ingress_rule(group, ec2.Port.tcp(3306), "Schema setup at deploy time")
        fn = PythonFunction(self, "SchemaSetup", name="schema_setup", key=key, log_retention=log_retention,
                            environment={"SECRET_ARN": self.secret.secret_arn if self.secret else ""},
                            timeout_s=300, whole_package=True, vendored=VENDORED, vpc=vpc, asynchronous=True,
                            security_groups=[group])
        if self.secret:
            # Explicit statements: secret.grant_read would also edit the storage stack's key policy
            # and make the two stacks depend on each other.
            fn.function.add_to_role_policy(iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[self.secret.secret_arn]))
            fn.function.add_to_role_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]))
        resource = CustomResource(self, "Schema", service_token=fn.function.function_arn,
                                  resource_type="Custom::AuroraSchema",
                                  properties={"SecretArn": self.secret.secret_arn if self.secret else "",
                                              "SchemaVersion": str(c.SCHEMA_VERSION)})
        resource.node.add_dependency(self.cluster)

"""Analytics: Aurora MySQL Serverless v2 in isolated subnets behind the QuickSight dashboards."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from glue_jobs.recommender.publish.aurora import MIGRATIONS
from stacks.constructs import VENDORED, PythonFunction
from stacks.nag import acknowledge
from stacks.network import ExistingVpc, resolve_vpc
from stacks.quicksight import QuickSightAnalytics

DATABASE_NAME = "recommender"


class AnalyticsStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, vpc: ec2.IVpc | ExistingVpc,
                 retain_data: bool, deletion_protection: bool, min_acu: float, max_acu: float,
                 log_retention: logs.RetentionDays, quicksight_principal_arn: str | None = None,
                 **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        self.security_group = ec2.SecurityGroup(self, "DbSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                                description="Aurora: reachable only from the job and schema setup")
        self.cluster = rds.DatabaseCluster(
            self, "Aurora", engine=rds.DatabaseClusterEngine.aurora_mysql(
                version=rds.AuroraMysqlEngineVersion.VER_3_08_0),
            credentials=rds.Credentials.from_generated_secret("recommender_admin", encryption_key=key,
                                                              secret_name=f"{prefix}/aurora/admin"),
            default_database_name=DATABASE_NAME, writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=min_acu, serverless_v2_max_capacity=max_acu,
            vpc=vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group], storage_encryption_key=key,
            iam_authentication=True, enable_data_api=True, deletion_protection=deletion_protection,
            backup=rds.BackupProps(retention=Duration.days(7 if not retain_data else 30)),
            cloudwatch_logs_exports=["error", "general", "slowquery", "audit"],
            cloudwatch_logs_retention=log_retention, port=3306,
            removal_policy=RemovalPolicy.SNAPSHOT if retain_data else RemovalPolicy.DESTROY)
        self.secret = self.cluster.secret
        self.cluster.add_rotation_single_user(automatically_after=Duration.days(30),
                                              vpc_subnets=ec2.SubnetSelection(
                                                  subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))
        acknowledge(self.cluster, "AwsSolutions-RDS11",
                    "MySQL's default port: the cluster is only reachable from named security groups "
                    "inside isolated subnets, and QuickSight's VPC connection expects it.")
        acknowledge(self.cluster, "AwsSolutions-RDS14",
                    "Backtrack is not available for Aurora Serverless v2; point-in-time restore is.")
        if not deletion_protection:
            acknowledge(self.cluster, "AwsSolutions-RDS10",
                        "Deletion protection is off only in dev, which is meant to be torn down; "
                        "-c env=prod turns it on.")
        acknowledge(self, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    "CDK's log-retention helper (sets retention on the cluster's exported log groups) "
                    "only writes its own logs with this policy.")
        acknowledge(self, "AwsSolutions-IAM5[Resource::*]",
                    "CDK's log-retention helper must act on log groups RDS creates at run time, whose "
                    "ARNs are not known when the template is written.")
        self.schema_setup(key, vpc, log_retention)
        if quicksight_principal_arn and self.secret:
            # QuickSight reads the credentials with its own Secrets Manager role (enable Secrets
            # Manager access in QuickSight's admin settings once per account).
            self.secret.add_to_resource_policy(iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=["*"],
                principals=[iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/service-role/"
                                             "aws-quicksight-secretsmanager-role-v0")]))
            self.quicksight = QuickSightAnalytics(
                self, "QuickSight", prefix=prefix, principal_arn=quicksight_principal_arn, vpc=vpc,
                cluster=self.cluster, db_security_group=self.security_group, secret_arn=self.secret.secret_arn,
                key=key, database=DATABASE_NAME)
        CfnOutput(self, "ClusterEndpoint", value=self.cluster.cluster_endpoint.hostname)

    def schema_setup(self, key: kms.IKey, vpc: ec2.IVpc, log_retention: logs.RetentionDays) -> None:
        """Runs the job's own migrations at deploy time (a custom resource), so dashboards have
        their tables before the first training run; re-runs when a migration is added."""
        group = ec2.SecurityGroup(self, "SchemaSetupSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="Schema setup function: to Aurora and AWS endpoints")
        self.security_group.add_ingress_rule(group, ec2.Port.tcp(3306), "Schema setup at deploy time")
        fn = PythonFunction(self, "SchemaSetup", name="schema_setup", key=key, log_retention=log_retention,
                            environment={"SECRET_ARN": self.secret.secret_arn if self.secret else ""},
                            timeout_s=300, whole_package=True, vendored=VENDORED, vpc=vpc,
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
                                              "SchemaVersion": str(max(v for v, _ in MIGRATIONS))})
        resource.node.add_dependency(self.cluster)
        for policy in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole"):
            acknowledge(fn.function, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        f"{policy}]", "AWS's policies for a function's own logs and its network interfaces "
                        "in the VPC.")
        acknowledge(fn.function, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray tracing and VPC network interfaces accept no resource but *.")

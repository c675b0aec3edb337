"""Analytics: Aurora MySQL Serverless v2 in isolated subnets behind the QuickSight dashboards."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from stacks.nag import acknowledge
from stacks.network import ExistingVpc, resolve_vpc

DATABASE_NAME = "recommender"


class AnalyticsStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, vpc: ec2.IVpc | ExistingVpc,
                 retain_data: bool, deletion_protection: bool, min_acu: float, max_acu: float,
                 log_retention: logs.RetentionDays, **kwargs: object) -> None:
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
        CfnOutput(self, "ClusterEndpoint", value=self.cluster.cluster_endpoint.hostname)

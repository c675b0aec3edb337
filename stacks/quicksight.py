"""QuickSight (opt-in; needs a QuickSight subscription and a principal): a VPC connection to
Aurora, an Aurora data source and an S3 manifest data source, and data sets for the latest
recommendations (with artist names) and for the model-run history."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_quicksight as qs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from constructs import Construct

from glue_jobs import contracts as c
from stacks.nag import acknowledge
from stacks.storage import bucket_name

DATA_SOURCE_ACTIONS = ["quicksight:DescribeDataSource", "quicksight:DescribeDataSourcePermissions",
                       "quicksight:PassDataSource", "quicksight:UpdateDataSource", "quicksight:DeleteDataSource",
                       "quicksight:UpdateDataSourcePermissions"]
DATA_SET_ACTIONS = ["quicksight:DescribeDataSet", "quicksight:DescribeDataSetPermissions", "quicksight:PassDataSet",
                    "quicksight:DescribeIngestion", "quicksight:ListIngestions", "quicksight:UpdateDataSet",
                    "quicksight:DeleteDataSet", "quicksight:CreateIngestion", "quicksight:CancelIngestion",
                    "quicksight:UpdateDataSetPermissions"]
LATEST_SQL = (f"SELECT r.{c.USER_ID}, r.{c.RANK}, r.{c.ARTIST_ID}, a.name AS {c.ARTIST_NAME}, r.{c.SCORE}, r.run_id "
              f"FROM {c.SQL_RECOMMENDATIONS} r LEFT JOIN {c.SQL_ARTISTS} a ON a.{c.ARTIST_ID} = r.{c.ARTIST_ID}")
RUNS_SQL = f"SELECT run_id, status, started_at, finished_at, rows_loaded, metrics, counts FROM {c.SQL_MODEL_RUNS}"


class QuickSightAnalytics(Construct):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, principal_arn: str, vpc: ec2.IVpc,
                 cluster: rds.DatabaseCluster, db_security_group: ec2.ISecurityGroup, secret_arn: str,
                 key: kms.IKey, database: str) -> None:
        super().__init__(scope, id_)
        group = ec2.SecurityGroup(self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="QuickSight network interfaces: to Aurora only")
        db_security_group.add_ingress_rule(group, ec2.Port.tcp(3306), "QuickSight dashboards read Aurora")
        vpc_role = iam.Role(self, "VpcConnectionRole", assumed_by=iam.ServicePrincipal("quicksight.amazonaws.com"),
                            description="QuickSight manages its network interfaces in the VPC")
        vpc_role.add_to_policy(iam.PolicyStatement(
            actions=["ec2:CreateNetworkInterface", "ec2:ModifyNetworkInterfaceAttribute",
                     "ec2:DeleteNetworkInterface", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
            resources=["*"]))
        acknowledge(vpc_role, "AwsSolutions-IAM5[Resource::*]",
                    "QuickSight creates its network interfaces at run time; EC2 offers no narrower resource.")
        connection = qs.CfnVPCConnection(
            self, "VpcConnection", aws_account_id=Aws.ACCOUNT_ID, vpc_connection_id=f"{prefix}-aurora",
            name=f"{prefix}-aurora", role_arn=vpc_role.role_arn, security_group_ids=[group.security_group_id],
            subnet_ids=[s.subnet_id for s in vpc.isolated_subnets])

        aurora_source = qs.CfnDataSource(
            self, "AuroraSource", aws_account_id=Aws.ACCOUNT_ID, data_source_id=f"{prefix}-aurora",
            name=f"{prefix} recommendations (Aurora)", type="AURORA",
            data_source_parameters=qs.CfnDataSource.DataSourceParametersProperty(
                aurora_parameters=qs.CfnDataSource.AuroraParametersProperty(
                    host=cluster.cluster_endpoint.hostname, port=3306, database=database)),
            credentials=qs.CfnDataSource.DataSourceCredentialsProperty(secret_arn=secret_arn),
            vpc_connection_properties=qs.CfnDataSource.VpcConnectionPropertiesProperty(
                vpc_connection_arn=connection.attr_arn),
            ssl_properties=qs.CfnDataSource.SslPropertiesProperty(disable_ssl=False),
            permissions=[qs.CfnDataSource.ResourcePermissionProperty(principal=principal_arn,
                                                                     actions=DATA_SOURCE_ACTIONS)])

        curated = s3.Bucket.from_bucket_name(self, "Curated", bucket_name(prefix, "curated"))
        s3_role = iam.Role(self, "ManifestReaderRole", assumed_by=iam.ServicePrincipal("quicksight.amazonaws.com"),
                           description="QuickSight reads the published runs' CSV through the manifest")
        curated.grant_read(s3_role)
        key.grant_decrypt(s3_role)
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*"):
            acknowledge(s3_role, f"AwsSolutions-IAM5[{finding}]", "Read-only variants of one action on one bucket.")
        acknowledge(s3_role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{prefix}-curated-"
                    "<AWS::AccountId>-<AWS::Region>/*]", "The manifest always points at the newest run's folder.")
        qs.CfnDataSource(
            self, "ManifestSource", aws_account_id=Aws.ACCOUNT_ID, data_source_id=f"{prefix}-latest-csv",
            name=f"{prefix} latest run (S3)", type="S3",
            data_source_parameters=qs.CfnDataSource.DataSourceParametersProperty(
                s3_parameters=qs.CfnDataSource.S3ParametersProperty(
                    manifest_file_location=qs.CfnDataSource.ManifestFileLocationProperty(
                        bucket=curated.bucket_name, key=c.QUICKSIGHT_MANIFEST_FILE),
                    role_arn=s3_role.role_arn)),
            permissions=[qs.CfnDataSource.ResourcePermissionProperty(principal=principal_arn,
                                                                     actions=DATA_SOURCE_ACTIONS)])

        def data_set(id_: str, name: str, sql: str, columns: list[tuple[str, str]]) -> qs.CfnDataSet:
            return qs.CfnDataSet(
                self, id_, aws_account_id=Aws.ACCOUNT_ID, data_set_id=f"{prefix}-{id_.lower()}", name=name,
                import_mode="DIRECT_QUERY",
                physical_table_map={"table": qs.CfnDataSet.PhysicalTableProperty(
                    custom_sql=qs.CfnDataSet.CustomSqlProperty(
                        data_source_arn=aurora_source.attr_arn, name=name, sql_query=sql,
                        columns=[qs.CfnDataSet.InputColumnProperty(name=n, type=t) for n, t in columns]))},
                permissions=[qs.CfnDataSet.ResourcePermissionProperty(principal=principal_arn,
                                                                      actions=DATA_SET_ACTIONS)])

        self.latest = data_set("LatestRecommendations", f"{prefix} latest recommendations", LATEST_SQL, [
            (c.USER_ID, "INTEGER"), (c.RANK, "INTEGER"), (c.ARTIST_ID, "INTEGER"), (c.ARTIST_NAME, "STRING"),
            (c.SCORE, "DECIMAL"), ("run_id", "STRING")])
        self.runs = data_set("ModelRuns", f"{prefix} model runs", RUNS_SQL, [
            ("run_id", "STRING"), ("status", "STRING"), ("started_at", "DATETIME"), ("finished_at", "DATETIME"),
            ("rows_loaded", "INTEGER"), ("metrics", "STRING"), ("counts", "STRING")])

"""QuickSight (opt-in; needs a QuickSight subscription and a principal): a VPC connection to
Aurora, an Aurora data source and an S3 manifest data source, data sets for the latest
recommendations and similar artists (with artist names) and the model-run history, and a
dashboard over the recommendations and the runs."""

from __future__ import annotations

import json

from aws_cdk import Aws, CustomResource
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_quicksight as qs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import files
from stacks.constructs import PythonFunction
from stacks.nag import acknowledge, bucket_objects
from stacks.storage import bucket_name

DATA_SOURCE_ACTIONS = ["quicksight:DescribeDataSource", "quicksight:DescribeDataSourcePermissions",
                       "quicksight:PassDataSource", "quicksight:UpdateDataSource", "quicksight:DeleteDataSource",
                       "quicksight:UpdateDataSourcePermissions"]
DATA_SET_ACTIONS = ["quicksight:DescribeDataSet", "quicksight:DescribeDataSetPermissions", "quicksight:PassDataSet",
                    "quicksight:DescribeIngestion", "quicksight:ListIngestions", "quicksight:UpdateDataSet",
                    "quicksight:DeleteDataSet", "quicksight:CreateIngestion", "quicksight:CancelIngestion",
                    "quicksight:UpdateDataSetPermissions"]
# Owner of the dashboard: read, query, publish versions, share.
DASHBOARD_ACTIONS = ["quicksight:DescribeDashboard", "quicksight:ListDashboardVersions",
                     "quicksight:UpdateDashboardPermissions", "quicksight:QueryDashboard",
                     "quicksight:UpdateDashboard", "quicksight:DeleteDashboard",
                     "quicksight:DescribeDashboardPermissions", "quicksight:UpdateDashboardPublishedVersion"]
# QuickSight creates this role when an admin enables Secrets Manager access (once per account).
SECRETS_MANAGER_ROLE = "aws-quicksight-secretsmanager-role-v0"
# A valid run id that sorts before every real one: the placeholder manifest points at its folder.
PLACEHOLDER_RUN_ID = "00000000T000000Z-0000"

LATEST_SQL = (f"SELECT r.{c.USER_ID}, r.{c.RANK}, r.{c.ARTIST_ID}, a.{c.SQL_ARTIST_NAME} AS {c.ARTIST_NAME}, "
              f"r.{c.SCORE}, r.{c.PREDICTED_RATING}, r.{c.SQL_RUN_ID} "
              f"FROM {c.SQL_RECOMMENDATIONS} r LEFT JOIN {c.SQL_ARTISTS} a ON a.{c.ARTIST_ID} = r.{c.ARTIST_ID}")
# Each artist's "fans also like" list, both artists named (a LEFT JOIN: a run without names still shows ids).
SIMILAR_SQL = (f"SELECT s.{c.ARTIST_ID}, a.{c.SQL_ARTIST_NAME} AS {c.ARTIST_NAME}, s.{c.RANK}, "
               f"s.{c.SIMILAR_ARTIST_ID}, b.{c.SQL_ARTIST_NAME} AS {c.SIMILAR_ARTIST_NAME}, s.{c.SIMILARITY}, "
               f"s.{c.SQL_RUN_ID} FROM {c.SQL_SIMILAR_ARTISTS} s "
               f"LEFT JOIN {c.SQL_ARTISTS} a ON a.{c.ARTIST_ID} = s.{c.ARTIST_ID} "
               f"LEFT JOIN {c.SQL_ARTISTS} b ON b.{c.ARTIST_ID} = s.{c.SIMILAR_ARTIST_ID}")
SIMILAR_COLUMNS = [(c.ARTIST_ID, "INTEGER"), (c.ARTIST_NAME, "STRING"), (c.RANK, "INTEGER"),
                   (c.SIMILAR_ARTIST_ID, "INTEGER"), (c.SIMILAR_ARTIST_NAME, "STRING"), (c.SIMILARITY, "DECIMAL"),
                   (c.SQL_RUN_ID, "STRING")]  # what SIMILAR_SQL returns, in its order
# model_runs.metrics is JSON text (publish/aurora.py); charts need numbers. JSON null (RMSE does
# not apply to implicit feedback) becomes SQL NULL rather than 0.
RUN_METRICS = (("rmse", "rmse"), ("baselines.bias_rmse", "bias_rmse"),
               ("baselines.global_mean_rmse", "global_mean_rmse"))
RUNS_SQL = ("SELECT " + ", ".join([
    c.SQL_RUN_ID, c.SQL_RUN_STATUS, c.SQL_STARTED_AT, c.SQL_FINISHED_AT, c.SQL_ROWS_LOADED, c.SQL_METRICS, c.SQL_COUNTS,
    *(f"CAST(NULLIF(JSON_UNQUOTE(JSON_EXTRACT({c.SQL_METRICS}, '$.{path}')), 'null') AS DECIMAL(12,6)) AS {name}"
      for path, name in RUN_METRICS)])
    + f" FROM {c.SQL_MODEL_RUNS}")
LATEST, RUNS = "latest", "runs"  # the dashboard's names for the two data sets


class QuickSightAnalytics(Construct):
    """`schema` and `writer`: what the data sets' SQL needs to exist when QuickSight validates it at
    creation (the schema custom resource, the cluster's writer instance)."""

    def __init__(self, scope: Construct, id_: str, *, prefix: str, principal_arn: str, vpc: ec2.IVpc,
                 cluster: rds.DatabaseCluster, db_security_group: ec2.ISecurityGroup, secret_arn: str,
                 key: kms.IKey, database: str, schema: IConstruct, writer: IConstruct,
                 log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, id_)
        self.prefix, self.principal_arn = prefix, principal_arn
        connection = self.vpc_connection(vpc, db_security_group)
        aurora_source = self.aurora_source(connection, cluster, secret_arn, key, database, writer)
        self.manifest_source(key, log_retention)

        def data_set(id_: str, name: str, sql: str, columns: list[tuple[str, str]]) -> qs.CfnDataSet:
            created = qs.CfnDataSet(
                self, id_, aws_account_id=Aws.ACCOUNT_ID, data_set_id=f"{prefix}-{id_.lower()}", name=name,
                import_mode="DIRECT_QUERY",
                physical_table_map={"table": qs.CfnDataSet.PhysicalTableProperty(
                    custom_sql=qs.CfnDataSet.CustomSqlProperty(
                        data_source_arn=aurora_source.attr_arn, name=name, sql_query=sql,
                        columns=[qs.CfnDataSet.InputColumnProperty(name=n, type=t) for n, t in columns]))},
                permissions=[qs.CfnDataSet.ResourcePermissionProperty(principal=principal_arn,
                                                                      actions=DATA_SET_ACTIONS)])
            # DIRECT_QUERY custom SQL is checked against the tables when the data set is created.
            created.node.add_dependency(schema, writer)
            return created

        self.latest = data_set("LatestRecommendations", f"{prefix} latest recommendations", LATEST_SQL, [
            (c.USER_ID, "INTEGER"), (c.RANK, "INTEGER"), (c.ARTIST_ID, "INTEGER"), (c.ARTIST_NAME, "STRING"),
            (c.SCORE, "DECIMAL"), (c.PREDICTED_RATING, "DECIMAL"), (c.SQL_RUN_ID, "STRING")])
        self.similar = data_set("SimilarArtists", f"{prefix} similar artists", SIMILAR_SQL, SIMILAR_COLUMNS)
        self.runs = data_set("ModelRuns", f"{prefix} model runs", RUNS_SQL, [
            (c.SQL_RUN_ID, "STRING"), (c.SQL_RUN_STATUS, "STRING"), (c.SQL_STARTED_AT, "DATETIME"),
            (c.SQL_FINISHED_AT, "DATETIME"), (c.SQL_ROWS_LOADED, "INTEGER"), (c.SQL_METRICS, "STRING"),
            (c.SQL_COUNTS, "STRING"),
            *((name, "DECIMAL") for _, name in RUN_METRICS)])
        self.dashboard = self.recommendations_dashboard()

    def vpc_connection(self, vpc: ec2.IVpc, db_security_group: ec2.ISecurityGroup) -> qs.CfnVPCConnection:
        """QuickSight's network interfaces in the isolated subnets, admitted to Aurora."""
        group = ec2.SecurityGroup(self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="QuickSight network interfaces: to Aurora only")
        db_security_group.add_ingress_rule(group, ec2.Port.tcp(3306), "QuickSight dashboards read Aurora")
        # QuickSight's network interfaces are not stateful: the database's replies come back to
        # random ports and need their own inbound rule.
        group.add_ingress_rule(db_security_group, ec2.Port.all_tcp(), "Aurora's replies to QuickSight")
        vpc_role = iam.Role(self, "VpcConnectionRole", assumed_by=iam.ServicePrincipal("quicksight.amazonaws.com"),
                            description="QuickSight manages its network interfaces in the VPC")
        vpc_role.add_to_policy(iam.PolicyStatement(
            actions=["ec2:CreateNetworkInterface", "ec2:ModifyNetworkInterfaceAttribute",
                     "ec2:DeleteNetworkInterface", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
            resources=["*"]))
        acknowledge(vpc_role, "AwsSolutions-IAM5[Resource::*]",
                    "QuickSight creates its network interfaces at run time; EC2 offers no narrower resource.")
        connection = qs.CfnVPCConnection(
            self, "VpcConnection", aws_account_id=Aws.ACCOUNT_ID, vpc_connection_id=f"{self.prefix}-aurora",
            name=f"{self.prefix}-aurora", role_arn=vpc_role.role_arn, security_group_ids=[group.security_group_id],
            subnet_ids=[s.subnet_id for s in vpc.isolated_subnets])
        connection.node.add_dependency(vpc_role)  # its policy, before QuickSight creates interfaces
        return connection

    def aurora_source(self, connection: qs.CfnVPCConnection, cluster: rds.DatabaseCluster, secret_arn: str,
                      key: kms.IKey, database: str, writer: IConstruct) -> qs.CfnDataSource:
        """Aurora through the VPC connection, over TLS, with the credentials from the secret."""
        # The secret is encrypted with the project's key: QuickSight's Secrets Manager role reads it
        # only with kms:Decrypt. A policy attached to the role by name (the key policy already
        # delegates to IAM), so the key's stack needs no change and no principal that may not exist.
        secrets_role = iam.Role.from_role_name(self, "SecretsManagerRole", SECRETS_MANAGER_ROLE)
        secret_key_access = iam.Policy(self, "SecretsManagerRoleKeyAccess", roles=[secrets_role], statements=[
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn], conditions={
                "StringEquals": {"kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"}})])
        source = qs.CfnDataSource(
            self, "AuroraSource", aws_account_id=Aws.ACCOUNT_ID, data_source_id=f"{self.prefix}-aurora",
            name=f"{self.prefix} recommendations (Aurora)", type="AURORA",
            data_source_parameters=qs.CfnDataSource.DataSourceParametersProperty(
                aurora_parameters=qs.CfnDataSource.AuroraParametersProperty(
                    host=cluster.cluster_endpoint.hostname, port=3306, database=database)),
            credentials=qs.CfnDataSource.DataSourceCredentialsProperty(secret_arn=secret_arn),
            vpc_connection_properties=qs.CfnDataSource.VpcConnectionPropertiesProperty(
                vpc_connection_arn=connection.attr_arn),
            ssl_properties=qs.CfnDataSource.SslPropertiesProperty(disable_ssl=False),
            permissions=[qs.CfnDataSource.ResourcePermissionProperty(principal=self.principal_arn,
                                                                     actions=DATA_SOURCE_ACTIONS)])
        # Creating the source connects with the secret's credentials.
        source.node.add_dependency(secret_key_access, writer)
        return source

    def manifest_source(self, key: kms.IKey, log_retention: logs.RetentionDays) -> qs.CfnDataSource:
        """The newest published run's CSV in the curated bucket, found through the manifest the job writes."""
        curated = s3.Bucket.from_bucket_name(self, "Curated", bucket_name(self.prefix, "curated"))
        s3_role = iam.Role(self, "ManifestReaderRole", assumed_by=iam.ServicePrincipal("quicksight.amazonaws.com"),
                           description="QuickSight reads the published runs' CSV through the manifest")
        curated.grant_read(s3_role)
        key.grant_decrypt(s3_role)
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*"):
            acknowledge(s3_role, f"AwsSolutions-IAM5[{finding}]", "Read-only variants of one action on one bucket.")
        acknowledge(s3_role, bucket_objects(self.prefix, "curated"),
                    "The manifest always points at the newest run's folder.")
        source = qs.CfnDataSource(
            self, "ManifestSource", aws_account_id=Aws.ACCOUNT_ID, data_source_id=f"{self.prefix}-latest-csv",
            name=f"{self.prefix} latest run (S3)", type="S3",
            data_source_parameters=qs.CfnDataSource.DataSourceParametersProperty(
                s3_parameters=qs.CfnDataSource.S3ParametersProperty(
                    manifest_file_location=qs.CfnDataSource.ManifestFileLocationProperty(
                        bucket=curated.bucket_name, key=c.QUICKSIGHT_MANIFEST_FILE),
                    role_arn=s3_role.role_arn)),
            permissions=[qs.CfnDataSource.ResourcePermissionProperty(principal=self.principal_arn,
                                                                     actions=DATA_SOURCE_ACTIONS)])
        # QuickSight reads the manifest when the source is created, long before the first run
        # writes one: a valid placeholder first, and the reader role's policy.
        source.node.add_dependency(self.manifest_placeholder(curated, key, log_retention), s3_role)
        return source

    def manifest_placeholder(self, curated: s3.IBucket, key: kms.IKey,
                             log_retention: logs.RetentionDays) -> CustomResource:
        """Writes, only where nothing exists yet, the manifest the job writes on publish (its own
        builder, pointed at a placeholder run) and a header-only CSV under that run's prefix."""
        root = curated.s3_url_for_object()
        csv_key = f"{c.RUNS_PREFIX}/{PLACEHOLDER_RUN_ID}/{c.RECOMMENDATIONS_CSV_DIR}/{c.RECOMMENDATIONS_CSV_FILE}"
        objects = [
            {"Key": c.QUICKSIGHT_MANIFEST_FILE, "ContentType": "application/json",
             "Body": json.dumps(files.quicksight_manifest(root, PLACEHOLDER_RUN_ID), indent=2)},
            {"Key": csv_key, "ContentType": "text/csv", "Body": ",".join(c.RECOMMENDATION_COLUMNS) + "\n"}]
        fn = PythonFunction(self, "ManifestPlaceholderFunction", name="manifest_placeholder", environment={},
                            log_retention=log_retention, key=key, timeout_s=60, asynchronous=True)
        fn.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[curated.arn_for_objects(o["Key"]) for o in objects]))
        # The curated bucket encrypts new objects with the project's key.
        fn.function.add_to_role_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey"], resources=[key.key_arn]))
        return CustomResource(self, "ManifestPlaceholder", service_token=fn.function.function_arn,
                              resource_type="Custom::QuickSightManifestPlaceholder",
                              properties={"Bucket": curated.bucket_name, "Objects": objects})

    def recommendations_dashboard(self) -> qs.CfnDashboard:
        """What an analyst opens: the latest recommendations with artist names (table), the artists
        recommended to most users (bar chart), and each run's test RMSE against the bias and global
        mean baselines over time (line chart)."""
        d = qs.CfnDashboard
        layout = d.LayoutProperty(configuration=d.LayoutConfigurationProperty(
            grid_layout=d.GridLayoutConfigurationProperty(elements=[
                d.GridLayoutElementProperty(element_id=visual_id, element_type="VISUAL", column_span=span, row_span=12)
                for visual_id, span in (("latest-recommendations", 36), ("top-artists", 18), ("run-rmse", 18))])))
        return qs.CfnDashboard(
            self, "Dashboard", aws_account_id=Aws.ACCOUNT_ID, dashboard_id=f"{self.prefix}-recommendations",
            name=f"{self.prefix} recommendations",
            definition=d.DashboardVersionDefinitionProperty(
                data_set_identifier_declarations=[
                    d.DataSetIdentifierDeclarationProperty(identifier=LATEST, data_set_arn=self.latest.attr_arn),
                    d.DataSetIdentifierDeclarationProperty(identifier=RUNS, data_set_arn=self.runs.attr_arn)],
                sheets=[d.SheetDefinitionProperty(
                    sheet_id="recommendations", name="Recommendations", layouts=[layout],
                    visuals=[latest_recommendations_table(), top_artists_bar_chart(), run_rmse_line_chart()])]),
            permissions=[d.ResourcePermissionProperty(principal=self.principal_arn, actions=DASHBOARD_ACTIONS)])


_d = qs.CfnDashboard


def _column(data_set: str, name: str) -> qs.CfnDashboard.ColumnIdentifierProperty:
    return _d.ColumnIdentifierProperty(data_set_identifier=data_set, column_name=name)


def _title(text: str) -> qs.CfnDashboard.VisualTitleLabelOptionsProperty:
    return _d.VisualTitleLabelOptionsProperty(format_text=_d.ShortFormatTextProperty(plain_text=text))


def _measure(field_id: str, data_set: str, name: str, aggregation: str) -> qs.CfnDashboard.MeasureFieldProperty:
    return _d.MeasureFieldProperty(numerical_measure_field=_d.NumericalMeasureFieldProperty(
        field_id=field_id, column=_column(data_set, name),
        aggregation_function=_d.NumericalAggregationFunctionProperty(simple_numerical_aggregation=aggregation)))


def latest_recommendations_table() -> qs.CfnDashboard.VisualProperty:
    """Each user's list in rank order, with artist names."""
    table_columns = (c.USER_ID, c.RANK, c.ARTIST_NAME, c.SCORE, c.PREDICTED_RATING, c.SQL_RUN_ID)
    return _d.VisualProperty(table_visual=_d.TableVisualProperty(
        visual_id="latest-recommendations", title=_title("Latest recommendations"),
        chart_configuration=_d.TableConfigurationProperty(
            field_wells=_d.TableFieldWellsProperty(table_unaggregated_field_wells=_d.TableUnaggregatedFieldWellsProperty(
                values=[_d.UnaggregatedFieldProperty(field_id=f"latest-{name}", column=_column(LATEST, name))
                        for name in table_columns])),
            sort_configuration=_d.TableSortConfigurationProperty(row_sort=[
                _d.FieldSortOptionsProperty(field_sort=_d.FieldSortProperty(field_id=f"latest-{name}", direction="ASC"))
                for name in (c.USER_ID, c.RANK)]))))


def top_artists_bar_chart() -> qs.CfnDashboard.VisualProperty:
    """The 20 artists recommended to most users."""
    return _d.VisualProperty(bar_chart_visual=_d.BarChartVisualProperty(
        visual_id="top-artists", title=_title("Top recommended artists (users recommended each)"),
        chart_configuration=_d.BarChartConfigurationProperty(
            orientation="HORIZONTAL",
            field_wells=_d.BarChartFieldWellsProperty(bar_chart_aggregated_field_wells=_d.BarChartAggregatedFieldWellsProperty(
                category=[_d.DimensionFieldProperty(categorical_dimension_field=_d.CategoricalDimensionFieldProperty(
                    field_id="top-artist", column=_column(LATEST, c.ARTIST_NAME)))],
                values=[_measure("top-users", LATEST, c.USER_ID, "DISTINCT_COUNT")])),
            sort_configuration=_d.BarChartSortConfigurationProperty(
                category_sort=[_d.FieldSortOptionsProperty(field_sort=_d.FieldSortProperty(
                    field_id="top-users", direction="DESC"))],
                category_items_limit=_d.ItemsLimitConfigurationProperty(items_limit=20, other_categories="EXCLUDE")))))


def run_rmse_line_chart() -> qs.CfnDashboard.VisualProperty:
    """Each day's runs: test RMSE beside the bias and global-mean baselines."""
    return _d.VisualProperty(line_chart_visual=_d.LineChartVisualProperty(
        visual_id="run-rmse", title=_title("Model runs: test RMSE against the baselines"),
        chart_configuration=_d.LineChartConfigurationProperty(
            type="LINE",
            field_wells=_d.LineChartFieldWellsProperty(line_chart_aggregated_field_wells=_d.LineChartAggregatedFieldWellsProperty(
                category=[_d.DimensionFieldProperty(date_dimension_field=_d.DateDimensionFieldProperty(
                    field_id="run-started", column=_column(RUNS, c.SQL_STARTED_AT), date_granularity="DAY"))],
                values=[_measure(f"run-{name}", RUNS, name, "AVERAGE") for _, name in RUN_METRICS])))))

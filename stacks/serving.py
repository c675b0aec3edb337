"""Serving: the DynamoDB table the job publishes to and the HTTP API customers read it through."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from glue_jobs import contracts as c
from stacks import names
from stacks.constructs import POWERTOOLS, VENDORED, PythonFunction
from stacks.nag import acknowledge, bucket_objects
from stacks.options import option
from stacks.storage import bucket_name

# Lambda's default concurrency quota per account and Region, and the part of it that must stay
# unreserved (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
LAMBDA_DEFAULT_CONCURRENCY = 1000
LAMBDA_UNRESERVED_MINIMUM = 100


@dataclass(frozen=True)
class ServingOptions:
    """Who may call the API, and how much of the account's Lambda concurrency it may take."""

    auth: str = option("apiAuth", "iam")  # iam | jwt
    jwt_issuer: str | None = option("jwtIssuer", None)
    jwt_audience: tuple[str, ...] = option("jwtAudience", ())
    # Cap on the API function's concurrent executions (protects the table and the bill); 0 = no cap.
    # Lambda keeps 100 of the account's concurrency unreserved, so the cap must fit under quota - 100.
    reserved_concurrency: int = option("apiReservedConcurrency", 0)

    def problems(self) -> list[str]:
        found = []
        if self.auth not in ("iam", "jwt"):
            found.append(f"apiAuth must be iam or jwt, got {self.auth!r}")
        if self.auth == "jwt" and not (self.jwt_issuer and self.jwt_audience):
            found.append("apiAuth jwt needs jwtIssuer and jwtAudience")
        most = LAMBDA_DEFAULT_CONCURRENCY - LAMBDA_UNRESERVED_MINIMUM
        if not 0 <= self.reserved_concurrency <= most:
            found.append(f"apiReservedConcurrency must be 0 (no cap) to {most}, got {self.reserved_concurrency}")
        return found


class ServingStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, retain_data: bool,
                 deletion_protection: bool, log_retention: logs.RetentionDays, options: ServingOptions,
                 **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        # Table (not TableV2): TableV2's customer-managed key needs a region-bound stack, and
        # synth here stays account- and region-agnostic.
        self.table = dynamodb.Table(
            self, "Recommendations", table_name=f"{prefix}-recommendations",
            partition_key=dynamodb.Attribute(name=c.DDB_PARTITION_KEY, type=dynamodb.AttributeType.NUMBER),
            sort_key=dynamodb.Attribute(name=c.DDB_SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, time_to_live_attribute=c.DDB_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED, encryption_key=key,
            deletion_protection=deletion_protection,
            removal_policy=RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY)

        api_fn = PythonFunction(self, "Api", name="recommendations_api", key=key, log_retention=log_retention,
                                vendored=POWERTOOLS, memory_mb=512,
                                reserved_concurrency=options.reserved_concurrency or None,
                                environment={"TABLE_NAME": self.table.table_name, "POINTER_TTL_SECONDS": "30",
                                             "POWERTOOLS_SERVICE_NAME": "recommendations-api",
                                             "POWERTOOLS_METRICS_NAMESPACE": "MusicRecommender"})
        self.table.grant_read_data(api_fn.function)
        self.api_function = api_fn.function
        if options.auth == "jwt":
            authorizer: apigw.IHttpRouteAuthorizer = authorizers.HttpJwtAuthorizer(
                "Jwt", jwt_issuer=options.jwt_issuer or "", jwt_audience=list(options.jwt_audience))
        else:
            authorizer = authorizers.HttpIamAuthorizer()
        self.api = apigw.HttpApi(self, "HttpApi", api_name=f"{prefix}-api", default_authorizer=authorizer,
                                 create_default_stage=True)
        integration = integrations.HttpLambdaIntegration("Lambda", api_fn.function)
        # Every route behind the same default authorizer (IAM or JWT): none is public.
        for path in ("/users/{user_id}/recommendations", "/artists/{artist_id}/similar", "/runs/active", "/health"):
            self.api.add_routes(path=path, methods=[apigw.HttpMethod.GET], integration=integration)
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=log_retention, encryption_key=key,
                                    removal_policy=RemovalPolicy.DESTROY)
        stage = self.api.default_stage.node.default_child  # type: ignore[union-attr]
        assert isinstance(stage, apigw.CfnStage)
        stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn,
            format='{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
                   '"route":"$context.routeKey","status":"$context.status",'
                   '"latencyMs":"$context.responseLatency","error":"$context.error.message"}')
        self.rollback_function = self.rollback(prefix, key, log_retention)
        CfnOutput(self, names.OUTPUT_API_URL, value=self.api.api_endpoint)
        CfnOutput(self, names.OUTPUT_TABLE, value=self.table.table_name)

    def rollback(self, prefix: str, key: kms.IKey, log_retention: logs.RetentionDays) -> lambda_.IFunction:
        """Operators invoke it with {"run_id": ...} to point serving back at an earlier run."""
        curated = s3.Bucket.from_bucket_name(self, "Curated", bucket_name(prefix, "curated"))
        fn = PythonFunction(self, "Rollback", name="rollback", key=key, log_retention=log_retention,
                            whole_package=True, vendored=(*VENDORED, *POWERTOOLS), timeout_s=60,
                            environment={"TABLE_NAME": self.table.table_name,
                                         "RUNS_ROOT": curated.s3_url_for_object(),
                                         "POWERTOOLS_SERVICE_NAME": "rollback"})
        fn.function.add_to_role_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DescribeTable"],
            resources=[self.table.table_arn]))
        fn.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[curated.arn_for_objects(c.LATEST_FILE),
                       curated.arn_for_objects(f"{c.RUNS_PREFIX}/*/{c.SUCCESS_MARKER}")]))
        # A run that was never published has no _SUCCESS: S3 reports the missing key as such
        # (404, which the code turns into a clear refusal) only to a caller that may list the bucket.
        fn.function.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"],
                                                           resources=[curated.bucket_arn]))
        fn.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:PutObject"],
            resources=[curated.arn_for_objects(c.LATEST_FILE), curated.arn_for_objects(c.QUICKSIGHT_MANIFEST_FILE)]))
        fn.function.add_to_role_policy(iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"],
                                                           resources=[key.key_arn]))
        acknowledge(fn.function, bucket_objects(prefix, "curated", f"{c.RUNS_PREFIX}/*/{c.SUCCESS_MARKER}"),
                    "Reads only the completion marker of whichever run the operator names.")
        CfnOutput(self, "RollbackFunction", value=fn.function.function_name)
        return fn.function

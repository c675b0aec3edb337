"""Serving: the DynamoDB table the job publishes to and the HTTP API customers read it through."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from glue_jobs import contracts as c
from stacks.constructs import POWERTOOLS, PythonFunction
from stacks.nag import acknowledge


class ServingStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, retain_data: bool,
                 deletion_protection: bool, log_retention: logs.RetentionDays, api_auth: str,
                 jwt_issuer: str | None, jwt_audience: tuple[str, ...], **kwargs: object) -> None:
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
                                environment={"TABLE_NAME": self.table.table_name, "POINTER_TTL_SECONDS": "30",
                                             "POWERTOOLS_SERVICE_NAME": "recommendations-api",
                                             "POWERTOOLS_METRICS_NAMESPACE": "MusicRecommender"})
        self.table.grant_read_data(api_fn.function)
        self.api_function = api_fn.function
        if api_auth == "jwt":
            authorizer: apigw.IHttpRouteAuthorizer = authorizers.HttpJwtAuthorizer(
                "Jwt", jwt_issuer=jwt_issuer or "", jwt_audience=list(jwt_audience))
        else:
            authorizer = authorizers.HttpIamAuthorizer()
        self.api = apigw.HttpApi(self, "HttpApi", api_name=f"{prefix}-api", default_authorizer=authorizer,
                                 create_default_stage=True)
        integration = integrations.HttpLambdaIntegration("Lambda", api_fn.function)
        for path in ("/users/{user_id}/recommendations", "/runs/active", "/health"):
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
        acknowledge(api_fn.function, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole]",
                    "AWS's basic execution policy only lets the function write its own logs.")
        acknowledge(api_fn.function, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray tracing: PutTraceSegments and PutTelemetryRecords accept no resource but *.")
        CfnOutput(self, "ApiUrl", value=self.api.api_endpoint)
        CfnOutput(self, "TableName", value=self.table.table_name)

"""Storage: raw, curated and artifact buckets under one customer-managed KMS key, plus the
access-log bucket. TLS only, no public access, lifecycle rules, EventBridge on the raw bucket."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import names
from stacks.encryption import allow_cloudwatch_logs
from stacks.nag import acknowledge, managed_policy


def bucket_name(prefix: str, purpose: str) -> str:
    """Deterministic names, so other stacks import buckets by name instead of by export (and
    their IAM policies name the bucket rather than a cross-stack token)."""
    return names.bucket_name(prefix, purpose, Aws.ACCOUNT_ID, Aws.REGION)


class StorageStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, retain_data: bool, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        removal = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY
        self.key = kms.Key(self, "DataKey", alias=f"alias/{prefix}-data", enable_key_rotation=True,
                           description="Encrypts the recommender's buckets, table, logs and job data",
                           removal_policy=removal)
        # Every log group of the project (functions, API access, flow logs, Glue, EMR, Aurora) uses it.
        allow_cloudwatch_logs(self.key)
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot use KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED, removal_policy=removal,
            auto_delete_objects=not retain_data, versioned=True,  # an overwritten or deleted log stays recoverable
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365),
                                              noncurrent_version_expiration=Duration.days(30))])
        acknowledge(self.access_logs, "AwsSolutions-S1",
                    "This is the access-log bucket itself; logging it into itself would loop.")

        def bucket(name: str, **extra: object) -> s3.Bucket:
            return s3.Bucket(self, name, bucket_name=bucket_name(prefix, name.lower()),
                             encryption=s3.BucketEncryption.KMS, encryption_key=self.key,
                             bucket_key_enabled=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                             enforce_ssl=True, versioned=True, removal_policy=removal,
                             auto_delete_objects=not retain_data, server_access_logs_bucket=self.access_logs,
                             server_access_logs_prefix=f"{name.lower()}/", **extra)  # type: ignore[arg-type]

        self.raw = bucket("Raw", event_bridge_enabled=True, lifecycle_rules=[
            s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30)),
            s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))])
        self.curated = bucket("Curated", lifecycle_rules=[
            # Published runs stay in DynamoDB for a TTL; their files go to cheaper storage.
            s3.LifecycleRule(prefix="runs/", transitions=[s3.Transition(
                storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(30))]),
            s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))])
        acknowledge(self, managed_policy("service-role/AWSLambdaBasicExecutionRole"),
                    "Only CDK's own custom-resource handlers (bucket notifications, emptying dev buckets on "
                    "delete) run in this stack; the policy lets them write their logs.")
        self.artifacts = bucket("Artifacts", lifecycle_rules=[
            s3.LifecycleRule(prefix="tmp/", expiration=Duration.days(7)),
            s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))])
        # What `make smoke` (tools/smoke.py) finds the deployment by.
        CfnOutput(self, names.OUTPUT_RAW_BUCKET, value=self.raw.bucket_name)
        CfnOutput(self, names.OUTPUT_CURATED_BUCKET, value=self.curated.bucket_name)

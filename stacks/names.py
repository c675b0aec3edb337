"""Names the stacks give deployed things, in plain Python (no CDK), so tools find a deployment by them."""

from __future__ import annotations


def bucket_name(prefix: str, purpose: str, account: str, region: str) -> str:
    """The one naming rule for the buckets: the storage stack passes CDK tokens for account and
    region, tools (make smoke) pass the real values."""
    return f"{prefix}-{purpose}-{account}-{region}"


# CloudFormation output keys (the CfnOutput ids) that `tools/smoke.py` reads, per stack suffix.
OUTPUT_RAW_BUCKET = "RawBucketName"  # <prefix>-storage
OUTPUT_CURATED_BUCKET = "CuratedBucketName"  # <prefix>-storage
OUTPUT_TABLE = "TableName"  # <prefix>-serving
OUTPUT_API_URL = "ApiUrl"  # <prefix>-serving
OUTPUT_WORKFLOW = "WorkflowName"  # <prefix>-training
OUTPUT_STATE_MACHINE = "StateMachineArn"  # <prefix>-emr
OUTPUT_CLUSTER_ARN = "ClusterArn"  # <prefix>-analytics
OUTPUT_SECRET_ARN = "SecretArn"  # <prefix>-analytics
OUTPUT_DATABASE = "DatabaseName"  # <prefix>-analytics

# Raw bucket prefixes: user uploads, and DMS's replication target. EventBridge starts training on both.
RATINGS_PREFIX = "ratings/"
RAW_PREFIXES = (RATINGS_PREFIX, "dms/")

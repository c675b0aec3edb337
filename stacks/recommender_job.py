"""The recommender job's role, grants, code package and arguments: one definition both runtimes use."""

from __future__ import annotations

from aws_cdk import AssetHashType
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.constructs import ROOT, VENDORED, LocalCopy, bundling
from stacks.nag import acknowledge
from stacks.storage import RAW_PREFIXES, bucket_name


def new_data_pattern(raw: s3.IBucket) -> events.EventPattern:
    """New objects under the raw bucket's upload and DMS prefixes: what starts a training run on
    either runtime."""
    return events.EventPattern(source=["aws.s3"], detail_type=["Object Created"],
                               detail={"bucket": {"name": [raw.bucket_name]},
                                       "object": {"key": [{"prefix": p} for p in RAW_PREFIXES]}})


def shuffle_partitions(workers: int) -> int:
    """Spark shuffle partitions for a run on `workers` Glue workers (or the EMR equivalent)."""
    return max(8, workers * 8)


class RecommenderJob(Construct):
    """What the job needs wherever it runs: a role `assumed_by` the runtime's service with the
    job's data grants, the glue_jobs package (with its vendored pure-Python dependencies), and the
    job's arguments. The Glue job passes `arguments` as DefaultArguments, EMR Serverless as
    spark-submit's entry-point arguments (`argv`), so the two can never drift apart."""

    def __init__(self, scope: Construct, id_: str, *, prefix: str, assumed_by: iam.IPrincipal, description: str,
                 key: kms.IKey, table_name: str, table_arn: str, db_secret_arn: str | None, input_prefix: str,
                 workers: int, job_arguments: dict[str, str]) -> None:
        super().__init__(scope, id_)
        raw = s3.Bucket.from_bucket_name(self, "Raw", bucket_name(prefix, "raw"))
        curated = s3.Bucket.from_bucket_name(self, "Curated", bucket_name(prefix, "curated"))
        artifacts = s3.Bucket.from_bucket_name(self, "Artifacts", bucket_name(prefix, "artifacts"))
        self.role = iam.Role(self, "JobRole", assumed_by=assumed_by, description=description)
        raw.grant_read(self.role)
        curated.grant_read_write(self.role)
        artifacts.grant_read_write(self.role)
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem",
                     "dynamodb:DescribeTable"], resources=[table_arn]))
        key.grant_encrypt_decrypt(self.role)
        if db_secret_arn:
            self.role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                        resources=[db_secret_arn]))
        self.package = s3_assets.Asset(
            self, "Package", path=str(ROOT / "glue_jobs"), asset_hash_type=AssetHashType.OUTPUT,
            bundling=bundling(LocalCopy(None, whole_package=True, vendored=VENDORED)))
        self.package.grant_read(self.role)
        self.arguments: dict[str, str] = {
            "--input": raw.s3_url_for_object(input_prefix),
            "--runs-root": curated.s3_url_for_object(),
            "--dynamodb-table": table_name,
            "--checkpoint-dir": artifacts.s3_url_for_object("tmp/checkpoints"),
            "--shuffle-partitions": str(shuffle_partitions(workers)),
            **({"--aurora-secret-arn": db_secret_arn} if db_secret_arn else {}),
            **job_arguments,
        }

        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*",
                        "Action::s3:DeleteObject*", "Action::s3:Abort*", "Action::kms:GenerateDataKey*",
                        "Action::kms:ReEncrypt*"):
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]",
                        "CDK grant on this project's own buckets and key only; the wildcard covers the "
                        "object-level variants of one action, not other resources.")
        for purpose in ("raw", "curated", "artifacts"):
            acknowledge(self.role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{prefix}-{purpose}-"
                        "<AWS::AccountId>-<AWS::Region>/*]",
                        "Objects anywhere in the job's own bucket: it reads raw and writes whole runs.")
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
                    "<AWS::AccountId>-<AWS::Region>/*]",
                    "Read-only, for the job's script and package, which CDK uploads as assets there.")

    def argv(self) -> list[str]:
        """The arguments as a command line: `--name value` pairs, in the order of `arguments`."""
        return [part for name, value in self.arguments.items() for part in (name, value)]

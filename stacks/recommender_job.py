"""The recommender job's role, grants, code package and arguments: one definition both runtimes use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import AssetHashType
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from glue_jobs.recommender.config import ConfigError, TuningMode, job_arguments, parse_args
from stacks.constructs import ROOT, VENDORED, LocalCopy, bundling
from stacks.nag import acknowledge, bucket_objects
from stacks.names import RAW_PREFIXES
from stacks.options import option
from stacks.storage import bucket_name

GLUE_WORKER_TYPES = {"G.1X": glue.WorkerType.G_1X, "G.2X": glue.WorkerType.G_2X, "G.4X": glue.WorkerType.G_4X,
                     "G.8X": glue.WorkerType.G_8X}
# A Glue EVENT trigger's batch: 1..100 events, 1..900 s
# (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-trigger.html#aws-glue-api-jobs-trigger-EventBatchingCondition).
GLUE_MAX_BATCH_SIZE = 100
GLUE_MAX_BATCH_WINDOW_S = 900
# What each way of starting the job adds to its arguments: new data reuses the published run's
# tuning while the ratings changed little and it is recent (auto); the schedule always tunes (full).
NEW_DATA_ARGUMENTS = job_arguments({"tuning": TuningMode.AUTO})
SCHEDULED_ARGUMENTS = job_arguments({"tuning": TuningMode.FULL})


@dataclass(frozen=True)
class JobOptions:
    """How the recommender runs, on Glue or on EMR Serverless (`emr`)."""

    worker_type: str = option("glueWorkerType", "G.1X")
    workers: int = option("glueWorkers", 2)
    timeout_minutes: int = option("glueTimeoutMinutes", 120)
    trigger_batch_size: int = option("triggerBatchSize", 10)  # raw objects that start a run...
    trigger_batch_window_s: int = option("triggerBatchWindowSeconds", 900)  # ...or this long after the first one
    schedule: str | None = option("schedule", None)  # e.g. "cron(0 3 * * ? *)" to retrain nightly anyway
    # Extra recommender options as {"--flag": "value"}, checked against the job's declarations.
    arguments: Mapping[str, str] = option("jobArguments", factory=dict)
    emr: bool = option("emr", False)  # new data starts the job on EMR Serverless instead of Glue

    def problems(self) -> list[str]:
        found = []
        if self.worker_type not in GLUE_WORKER_TYPES:
            *others, last = GLUE_WORKER_TYPES
            found.append(f"glueWorkerType must be {', '.join(others)} or {last}, got {self.worker_type!r}")
        if self.workers < 2:
            found.append("glueWorkers must be at least 2 (Glue's minimum for Spark jobs)")
        if not 1 <= self.trigger_batch_size <= GLUE_MAX_BATCH_SIZE:
            found.append(f"triggerBatchSize must be 1 to {GLUE_MAX_BATCH_SIZE}, got {self.trigger_batch_size}")
        if not 1 <= self.trigger_batch_window_s <= GLUE_MAX_BATCH_WINDOW_S:
            found.append(f"triggerBatchWindowSeconds must be 1 to {GLUE_MAX_BATCH_WINDOW_S}, "
                         f"got {self.trigger_batch_window_s}")
        return found


@dataclass(frozen=True)
class JobData:
    """Where the job reads and writes, owned by other stacks: the same for either runtime."""

    input_prefix: str  # in the raw bucket: uploads, or the folder DMS replicates the ratings table to
    table_name: str
    table_arn: str
    db_secret_arn: str | None  # Aurora's credentials (None: no Aurora sink)
    db_security_group: ec2.ISecurityGroup | None


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
                 key: kms.IKey, data: JobData, options: JobOptions) -> None:
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
                     "dynamodb:DescribeTable"], resources=[data.table_arn]))
        key.grant_encrypt_decrypt(self.role)
        if data.db_secret_arn:
            self.role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                        resources=[data.db_secret_arn]))
        self.package = s3_assets.Asset(
            self, "Package", path=str(ROOT / "glue_jobs"), asset_hash_type=AssetHashType.OUTPUT,
            bundling=bundling(LocalCopy(None, whole_package=True, vendored=VENDORED)))
        self.package.grant_read(self.role)
        # Named by the job's own option declarations, so a renamed option fails here, at synth.
        self.arguments: dict[str, str] = {**job_arguments({
            "inputs": raw.s3_url_for_object(data.input_prefix),
            "runs_root": curated.s3_url_for_object(),
            "dynamodb_table": data.table_name,
            "checkpoint_dir": artifacts.s3_url_for_object("tmp/checkpoints"),
            "shuffle_partitions": shuffle_partitions(options.workers),
            **({"aurora_secret_arn": data.db_secret_arn} if data.db_secret_arn else {}),
        }), **job_arguments(options.arguments)}
        for start in (NEW_DATA_ARGUMENTS, SCHEDULED_ARGUMENTS):
            try:  # the whole command line as the job will parse it: jobArguments may clash with ours
                parse_args(self.argv(start))
            except ConfigError as exc:
                raise ValueError(f"the recommender job's arguments would not start it: {exc}") from exc
        self.acknowledge_grants(prefix)

    def acknowledge_grants(self, prefix: str) -> None:
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*",
                        "Action::s3:DeleteObject*", "Action::s3:Abort*", "Action::kms:GenerateDataKey*",
                        "Action::kms:ReEncrypt*"):
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]",
                        "CDK grant on this project's own buckets and key only; the wildcard covers the "
                        "object-level variants of one action, not other resources.")
        for purpose in ("raw", "curated", "artifacts"):
            acknowledge(self.role, bucket_objects(prefix, purpose),
                        "Objects anywhere in the job's own bucket: it reads raw and writes whole runs.")
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
                    "<AWS::AccountId>-<AWS::Region>/*]",
                    "Read-only, for the job's script and package, which CDK uploads as assets there.")

    def argv(self, start: Mapping[str, str] | None = None) -> list[str]:
        """The arguments as a command line, `--name value` pairs in the order of `arguments`, with
        those of how the run starts (e.g. NEW_DATA_ARGUMENTS) replacing theirs, as a Glue trigger's do."""
        arguments = {**self.arguments, **(start or {})}
        return [part for name, value in arguments.items() for part in (name, value)]

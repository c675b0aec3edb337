"""Training: the Glue 5.1 PySpark job from glue_jobs/, its security configuration, and the
workflow that runs it when new ratings land (EventBridge -> EVENT trigger) or on a schedule."""

from __future__ import annotations

from aws_cdk import AssetHashType, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.constructs import ROOT, VENDORED, GlueWorkflowTarget, LocalCopy, bundling
from stacks.nag import acknowledge
from stacks.network import ExistingVpc, resolve_vpc
from stacks.storage import RAW_PREFIXES, bucket_name

WORKER_TYPES = {"G.1X": glue.WorkerType.G_1X, "G.2X": glue.WorkerType.G_2X, "G.4X": glue.WorkerType.G_4X,
                "G.8X": glue.WorkerType.G_8X}


class TrainingStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, table_name: str, table_arn: str,
                 vpc: ec2.IVpc | ExistingVpc, db_secret_arn: str | None, db_security_group: ec2.ISecurityGroup | None,
                 worker_type: str, workers: int, timeout_minutes: int,
                 trigger_batch_size: int, trigger_batch_window_s: int, schedule: str | None,
                 input_prefix: str, job_arguments: dict[str, str], new_data_trigger: bool = True,
                 **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        raw = s3.Bucket.from_bucket_name(self, "Raw", bucket_name(prefix, "raw"))
        curated = s3.Bucket.from_bucket_name(self, "Curated", bucket_name(prefix, "curated"))
        artifacts = s3.Bucket.from_bucket_name(self, "Artifacts", bucket_name(prefix, "artifacts"))
        self.role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                             description="The recommender Glue job: reads raw, writes curated and the table")
        self.role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSGlueServiceRole"))
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

        security = glue.SecurityConfiguration(
            self, "Security", security_configuration_name=f"{prefix}-job",
            s3_encryption=glue.S3Encryption.kms(key), cloud_watch_encryption=glue.CloudWatchEncryption.kms(key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(key))

        job_sg = ec2.SecurityGroup(self, "JobSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                   description="Glue job ENIs: Spark needs all ports between its own workers")
        job_sg.add_ingress_rule(job_sg, ec2.Port.all_tcp(), "Spark traffic between the job's own workers")
        if db_security_group is not None:
            # Declared here, not on the database's group: the rule belongs to whoever needs access,
            # and the analytics stack must not depend on this one.
            ec2.CfnSecurityGroupIngress(self, "DbFromJob", group_id=db_security_group.security_group_id,
                                        source_security_group_id=job_sg.security_group_id, ip_protocol="tcp",
                                        from_port=3306, to_port=3306, description="Glue job publishes to Aurora")
        subnet = vpc.isolated_subnets[0]
        connection = glue.Connection(
            self, "VpcConnection", type=glue.ConnectionType.NETWORK, connection_name=f"{prefix}-vpc",
            security_groups=[job_sg], network=glue.ConnectionNetwork.subnet(subnet),
            description="Runs the job inside the VPC so it reaches Aurora through private subnets")

        package = s3_assets.Asset(
            self, "JobPackage", path=str(ROOT / "glue_jobs"), asset_hash_type=AssetHashType.OUTPUT,
            bundling=bundling(LocalCopy(None, whole_package=True, vendored=VENDORED)))
        package.grant_read(self.role)
        arguments = {
            "--input": raw.s3_url_for_object(input_prefix),
            "--runs-root": curated.s3_url_for_object(),
            "--dynamodb-table": table_name,
            "--checkpoint-dir": artifacts.s3_url_for_object("tmp/checkpoints"),
            "--shuffle-partitions": str(max(8, workers * 8)),
            **({"--aurora-secret-arn": db_secret_arn} if db_secret_arn else {}),
            **job_arguments,
        }
        self.job = glue.PySparkEtlJob(
            self, "Job", job_name=f"{prefix}-recommender", role=self.role,
            script=glue.Code.from_asset(str(ROOT / "glue_jobs" / "glue_entry.py")),
            glue_version=glue.GlueVersion.V5_1,
            worker_configuration=glue.WorkerConfiguration(worker_type=WORKER_TYPES[worker_type],
                                                          number_of_workers=workers),
            timeout=Duration.minutes(timeout_minutes),
            # Glue forbids retries with run queuing: a failed run is retried by the next trigger.
            max_retries=0,
            extra_python_files=[glue.Code.from_bucket(package.bucket, package.s3_object_key)],
            max_concurrent_runs=1, security_configuration=security, connections=[connection],
            default_arguments=arguments, job_run_queuing_enabled=True,
            description="Trains bias-aware ALS and publishes top-N recommendations")

        self.workflow = glue.CfnWorkflow(self, "Workflow", name=f"{prefix}-training",
                                         description="Retrains when new ratings land", max_concurrent_runs=1)
        glue.CfnTrigger(self, "OnNewData", name=f"{prefix}-on-new-data", type="EVENT",
                        workflow_name=self.workflow.ref,
                        actions=[glue.CfnTrigger.ActionProperty(job_name=self.job.job_name)],
                        event_batching_condition=glue.CfnTrigger.EventBatchingConditionProperty(
                            batch_size=trigger_batch_size, batch_window=trigger_batch_window_s))
        if new_data_trigger:  # off when EMR Serverless is the runtime that new data starts
            events.Rule(
                self, "RawObjectCreated", description="New ratings in the raw bucket start the training workflow",
                event_pattern=events.EventPattern(
                    source=["aws.s3"], detail_type=["Object Created"],
                    detail={"bucket": {"name": [raw.bucket_name]},
                            "object": {"key": [{"prefix": p} for p in RAW_PREFIXES]}}),
                targets=[GlueWorkflowTarget(self.workflow.ref)])  # type: ignore[list-item]
        if schedule:
            glue.CfnTrigger(self, "Scheduled", name=f"{prefix}-scheduled", type="SCHEDULED", schedule=schedule,
                            start_on_creation=True, workflow_name=self.workflow.ref,
                            actions=[glue.CfnTrigger.ActionProperty(job_name=self.job.job_name)])

        acknowledge(self.role, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSGlueServiceRole]", "AWS's documented policy for Glue job roles (Glue's own API calls, "
                    "ENIs in the VPC, its logs); data access is granted separately and per bucket.")
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*",
                        "Action::s3:DeleteObject*", "Action::s3:Abort*", "Action::kms:GenerateDataKey*",
                        "Action::kms:ReEncrypt*"):
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]",
                        "CDK grant on this stack's own buckets and key only; the wildcard covers the "
                        "object-level variants of one action, not other resources.")
        for purpose in ("raw", "curated", "artifacts"):
            acknowledge(self.role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{prefix}-{purpose}-"
                        "<AWS::AccountId>-<AWS::Region>/*]",
                        "Objects anywhere in the job's own bucket: it reads raw and writes whole runs.")
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
                    "<AWS::AccountId>-<AWS::Region>/*]",
                    "Read-only, for the job's script and package, which CDK uploads as assets there.")

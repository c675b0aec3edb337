"""EMR Serverless (opt-in): the same job code run with spark-submit, started by the same
new-data event through a Step Functions state machine that waits for the run to finish."""

from __future__ import annotations

from aws_cdk import AssetHashType, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.constructs import ROOT, VENDORED, LocalCopy, bundling
from stacks.nag import acknowledge
from stacks.network import ExistingVpc, resolve_vpc
from stacks.storage import RAW_PREFIXES, bucket_name

EMR_RELEASE = "emr-7.9.0"  # Spark 3.5 and Python 3.9+, like Glue 5.1's Spark 3.5


class EmrStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, table_arn: str, table_name: str,
                 vpc: ec2.IVpc | ExistingVpc, db_secret_arn: str | None, input_prefix: str,
                 log_retention: logs.RetentionDays, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        raw = s3.Bucket.from_bucket_name(self, "Raw", bucket_name(prefix, "raw"))
        curated = s3.Bucket.from_bucket_name(self, "Curated", bucket_name(prefix, "curated"))
        artifacts = s3.Bucket.from_bucket_name(self, "Artifacts", bucket_name(prefix, "artifacts"))

        group = ec2.SecurityGroup(self, "SparkSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="EMR Serverless workers: to Aurora and AWS endpoints")
        app = emr.CfnApplication(
            self, "Application", name=f"{prefix}-recommender", release_label=EMR_RELEASE, type="SPARK",
            auto_stop_configuration=emr.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=15),
            maximum_capacity=emr.CfnApplication.MaximumAllowedResourcesProperty(cpu="64 vCPU", memory="256 GB"),
            network_configuration=emr.CfnApplication.NetworkConfigurationProperty(
                subnet_ids=[s.subnet_id for s in vpc.isolated_subnets], security_group_ids=[group.security_group_id]))

        job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com"),
                            description="The recommender on EMR Serverless: same grants as the Glue job")
        raw.grant_read(job_role)
        curated.grant_read_write(job_role)
        artifacts.grant_read_write(job_role)
        key.grant_encrypt_decrypt(job_role)
        job_role.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem",
                     "dynamodb:DescribeTable"], resources=[table_arn]))
        if db_secret_arn:
            job_role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                       resources=[db_secret_arn]))
        script = s3_assets.Asset(self, "Script", path=str(ROOT / "glue_jobs" / "glue_entry.py"))
        package = s3_assets.Asset(self, "Package", path=str(ROOT / "glue_jobs"), asset_hash_type=AssetHashType.OUTPUT,
                                  bundling=bundling(LocalCopy(None, whole_package=True, vendored=VENDORED)))
        script.grant_read(job_role)
        package.grant_read(job_role)

        arguments = ["--input", raw.s3_url_for_object(input_prefix), "--runs-root", curated.s3_url_for_object(),
                     "--dynamodb-table", table_name, "--checkpoint-dir", artifacts.s3_url_for_object("tmp/checkpoints"),
                     *(["--aurora-secret-arn", db_secret_arn] if db_secret_arn else [])]
        run = sfn.CustomState(self, "RunRecommender", state_json={
            "Type": "Task", "Resource": "arn:aws:states:::emr-serverless:startJobRun.sync",
            "Parameters": {
                "ApplicationId": app.attr_application_id, "ExecutionRoleArn": job_role.role_arn,
                "Name": "recommender",
                "JobDriver": {"SparkSubmit": {
                    "EntryPoint": script.s3_object_url, "EntryPointArguments": arguments,
                    "SparkSubmitParameters": f"--py-files {package.s3_object_url}"}}},
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 0}]})
        log_group = logs.LogGroup(self, "StateMachineLogs", retention=log_retention, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "Training", state_machine_name=f"{prefix}-emr-training",
            definition_body=sfn.DefinitionBody.from_chainable(run), timeout=Duration.hours(6), tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False))
        app_arn = self.format_arn(service="emr-serverless", resource="/applications",
                                  resource_name=app.attr_application_id)
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["emr-serverless:StartJobRun", "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"],
            resources=[app_arn, f"{app_arn}/jobruns/*"]))
        self.state_machine.add_to_role_policy(iam.PolicyStatement(actions=["iam:PassRole"],
                                                                  resources=[job_role.role_arn]))
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[self.format_arn(service="events", resource="rule",
                                       resource_name="StepFunctionsGetEventsForEMRServerlessJobRule")]))
        events.Rule(self, "RawObjectCreated", description="New ratings start the EMR Serverless training run",
                    event_pattern=events.EventPattern(
                        source=["aws.s3"], detail_type=["Object Created"],
                        detail={"bucket": {"name": [raw.bucket_name]},
                                "object": {"key": [{"prefix": p} for p in RAW_PREFIXES]}}),
                    targets=[targets.SfnStateMachine(self.state_machine)])

        reason = "Scoped to this application's job runs, this project's buckets and key; the wildcard " \
                 "covers object keys, run ids or the object-level variants of one action."
        for finding in ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*",
                        "Action::s3:DeleteObject*", "Action::s3:Abort*", "Action::kms:GenerateDataKey*",
                        "Action::kms:ReEncrypt*"):
            acknowledge(job_role, f"AwsSolutions-IAM5[{finding}]", reason)
        for purpose in ("raw", "curated", "artifacts"):
            acknowledge(job_role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{prefix}-{purpose}-"
                        "<AWS::AccountId>-<AWS::Region>/*]", reason)
        acknowledge(job_role, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
                    "<AWS::AccountId>-<AWS::Region>/*]", "Read-only, for the script and package CDK uploads there.")
        acknowledge(self.state_machine, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:emr-serverless:"
                    "<AWS::Region>:<AWS::AccountId>:/applications/<Application.ApplicationId>/jobruns/*]",
                    "Job runs of this one application: their ids exist only once a run starts.")
        acknowledge(self.state_machine, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray tracing and log delivery accept no resource but *.")

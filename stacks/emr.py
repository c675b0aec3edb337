"""EMR Serverless (opt-in): the same job, role and arguments as the Glue job, run with spark-submit
on Python 3.11 (a custom image), started by batched new-data events through a Step Functions
state machine that waits for the run to finish."""

from __future__ import annotations

import re

from aws_cdk import CfnOutput, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks import names
from stacks.constructs import ROOT, encrypted_queue
from stacks.nag import acknowledge
from stacks.network import ExistingVpc, admit_to_database, resolve_vpc
from stacks.recommender_job import NEW_DATA_ARGUMENTS, JobData, JobOptions, RecommenderJob, new_data_pattern
from stacks.storage import bucket_name

EMR_RELEASE = "emr-7.9.0"  # Spark 3.5, like Glue 5.1's Spark 3.5.6
# emr-7.x runs PySpark with Python 3.9 by default; the job needs 3.11. The newest releases that ship
# 3.11 by default (emr-spark-8.x) bring Spark 4 and Scala 2.13, which would break parity with Glue 5.1
# (Spark 3.5.6, the pinned local pyspark). So the application runs a custom image: the same release
# plus Python 3.11 and the job's binary dependencies (emr_image/Dockerfile), set as PYSPARK_PYTHON.
# https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/application-custom-image.html
EMR_IMAGE_DIR = ROOT / "emr_image"
EMR_PYTHON = "/usr/bin/python3.11"
# CDK publishes image assets to the bootstrap repository, whose policy lets emr-serverless.amazonaws.com
# pull from bootstrap version 27 on (aws/aws-cdk-cli#112); an older bootstrap would deploy an
# application that cannot pull its image, so the stack refuses it (run `cdk bootstrap` again).
MIN_BOOTSTRAP_FOR_EMR_IMAGES = 27
# EventBridge Pipes waits at most 300 s to fill an SQS batch:
# https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeSourceSqsQueueParameters.html
PIPE_MAX_BATCH_WINDOW_S = 300


def pinned(package: str) -> str:
    """The version requirements.txt pins for `package`: the image installs what the job is tested with."""
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M | re.I)
    if not match:
        raise RuntimeError(f"requirements.txt pins no {package}")
    return match[1]


class EmrStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, vpc: ec2.IVpc | ExistingVpc,
                 data: JobData, options: JobOptions, log_retention: logs.RetentionDays, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        raw = s3.Bucket.from_bucket_name(self, "Raw", bucket_name(prefix, "raw"))
        app = self.spark_application(prefix, vpc, data.db_security_group)
        recommender = RecommenderJob(
            self, "Recommender", prefix=prefix, assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com"),
            description="The recommender on EMR Serverless: the Glue job's grants", key=key, data=data,
            options=options)
        self.state_machine = self.training(prefix, key, app, recommender, options.timeout_minutes, log_retention)
        self.batch_new_data(prefix, key, raw, options)

    def spark_application(self, prefix: str, vpc: ec2.IVpc,
                          db_security_group: ec2.ISecurityGroup | None) -> emr.CfnApplication:
        """The EMR Serverless application on the custom image, in the isolated subnets, admitted to Aurora."""
        group = ec2.SecurityGroup(self, "SparkSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="EMR Serverless workers: to Aurora and AWS endpoints")
        if db_security_group is not None:
            admit_to_database(self, "DbFromEmr", database=db_security_group, client=group,
                              description="EMR job publishes to Aurora")
        image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(EMR_IMAGE_DIR), platform=ecr_assets.Platform.LINUX_AMD64,
            build_args={"NUMPY_VERSION": pinned("numpy"), "BOTO3_VERSION": pinned("boto3")})
        app = emr.CfnApplication(
            self, "Application", name=f"{prefix}-recommender", release_label=EMR_RELEASE, type="SPARK",
            architecture="X86_64", image_configuration=emr.CfnApplication.ImageConfigurationInputProperty(
                image_uri=image.image_uri),
            auto_stop_configuration=emr.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=15),
            maximum_capacity=emr.CfnApplication.MaximumAllowedResourcesProperty(cpu="64 vCPU", memory="256 GB"),
            # One training at a time, like the Glue job's max_concurrent_runs=1: later runs queue
            # (the longest queue EMR allows) instead of overlapping.
            # https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/applications-concurrency-queuing.html
            scheduler_configuration=emr.CfnApplication.SchedulerConfigurationProperty(
                max_concurrent_runs=1, queue_timeout_minutes=720),
            network_configuration=emr.CfnApplication.NetworkConfigurationProperty(
                subnet_ids=[s.subnet_id for s in vpc.isolated_subnets], security_group_ids=[group.security_group_id]))
        CfnRule(self, "BootstrapAllowsEmrImages", assertions=[CfnRuleAssertion(
            assert_=Fn.condition_not(Fn.condition_contains(
                [str(v) for v in range(1, MIN_BOOTSTRAP_FOR_EMR_IMAGES)], Fn.ref("BootstrapVersion"))),
            assert_description=f"EMR Serverless pulls its image from the CDK bootstrap repository, which allows "
                               f"it from bootstrap version {MIN_BOOTSTRAP_FOR_EMR_IMAGES}: run `cdk bootstrap`.")])
        return app

    def training(self, prefix: str, key: kms.IKey, app: emr.CfnApplication, recommender: RecommenderJob,
                 timeout_minutes: int, log_retention: logs.RetentionDays) -> sfn.StateMachine:
        """A state machine whose one task runs the job with spark-submit and waits for it to end."""
        script = s3_assets.Asset(self, "Script", path=str(ROOT / "glue_jobs" / "glue_entry.py"))
        script.grant_read(recommender.role)
        spark_conf = {"spark.emr-serverless.driverEnv.PYSPARK_PYTHON": EMR_PYTHON,
                      "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": EMR_PYTHON,
                      "spark.executorEnv.PYSPARK_PYTHON": EMR_PYTHON}
        run = sfn.CustomState(self, "RunRecommender", state_json={
            "Type": "Task", "Resource": "arn:aws:states:::emr-serverless:startJobRun.sync",
            "Parameters": {
                "ApplicationId": app.attr_application_id, "ExecutionRoleArn": recommender.role.role_arn,
                "Name": "recommender", "ExecutionTimeoutMinutes": timeout_minutes,
                "JobDriver": {"SparkSubmit": {
                    "EntryPoint": script.s3_object_url, "EntryPointArguments": recommender.argv(NEW_DATA_ARGUMENTS),
                    "SparkSubmitParameters": " ".join(
                        [f"--py-files {recommender.package.s3_object_url}",
                         *(f"--conf {k}={v}" for k, v in spark_conf.items())])}}},
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 0}]})
        log_group = logs.LogGroup(self, "StateMachineLogs", retention=log_retention, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            self, "Training", state_machine_name=f"{prefix}-emr-training",
            definition_body=sfn.DefinitionBody.from_chainable(run),
            # a queued run waits up to 12 h, then runs up to timeout_minutes
            timeout=Duration.minutes(720 + timeout_minutes), tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False))
        CfnOutput(self, names.OUTPUT_STATE_MACHINE, value=machine.state_machine_arn)  # for make smoke
        self.allow_job_runs(machine, app, recommender.role)
        return machine

    def allow_job_runs(self, machine: sfn.StateMachine, app: emr.CfnApplication, job_role: iam.IRole) -> None:
        """What startJobRun.sync calls as the state machine: the run API, PassRole for the job role, and
        the managed rule Step Functions waits for the run's end through."""
        app_arn = self.format_arn(service="emr-serverless", resource="/applications",
                                  resource_name=app.attr_application_id)
        machine.add_to_role_policy(iam.PolicyStatement(
            actions=["emr-serverless:StartJobRun", "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"],
            resources=[app_arn, f"{app_arn}/jobruns/*"]))
        machine.add_to_role_policy(iam.PolicyStatement(actions=["iam:PassRole"], resources=[job_role.role_arn]))
        machine.add_to_role_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[self.format_arn(service="events", resource="rule",
                                       resource_name="StepFunctionsGetEventsForEMRServerlessJobRule")]))
        acknowledge(machine, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:emr-serverless:"
                    "<AWS::Region>:<AWS::AccountId>:/applications/<Application.ApplicationId>/jobruns/*]",
                    "Job runs of this one application: their ids exist only once a run starts.")
        acknowledge(machine, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray tracing and log delivery accept no resource but *.")

    def batch_new_data(self, prefix: str, key: kms.IKey, raw: s3.IBucket, options: JobOptions) -> None:
        """New data is batched like the Glue EVENT trigger (size, window) before a run starts:
        EventBridge rule -> SQS queue -> EventBridge Pipe (batch) -> one execution per batch."""
        dead_letters = encrypted_queue(self, "NewDataDeadLetters", key=key, retention_period=Duration.days(14))
        new_data = encrypted_queue(
            self, "NewData", key=key,
            # longer than a batch window plus the pipe's call, so no message is seen twice in a batch
            visibility_timeout=Duration.seconds(PIPE_MAX_BATCH_WINDOW_S + 60),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=3))
        events.Rule(self, "RawObjectCreated", description="New ratings in the raw bucket, batched for EMR training",
                    event_pattern=new_data_pattern(raw),
                    targets=[targets.SqsQueue(new_data, retry_attempts=8)])
        pipe_role = iam.Role(self, "PipeRole", assumed_by=iam.ServicePrincipal("pipes.amazonaws.com"),
                             description="Reads batches of new-data events and starts the EMR training")
        new_data.grant_consume_messages(pipe_role)
        self.state_machine.grant_start_execution(pipe_role)
        pipes.CfnPipe(
            self, "NewDataBatches", name=f"{prefix}-emr-new-data", role_arn=pipe_role.role_arn,
            description="A batch of new-data events starts one EMR training run",
            source=new_data.queue_arn, target=self.state_machine.state_machine_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                sqs_queue_parameters=pipes.CfnPipe.PipeSourceSqsQueueParametersProperty(
                    batch_size=options.trigger_batch_size,
                    # Glue waits up to trigger_batch_window_s (<= 900 s) after the first event; a pipe
                    # waits at most 300 s, so longer windows are shortened to 300 s.
                    maximum_batching_window_in_seconds=min(options.trigger_batch_window_s,
                                                           PIPE_MAX_BATCH_WINDOW_S))),
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                # a standard state machine is started asynchronously: the pipe does not wait for the run
                step_function_state_machine_parameters=pipes.CfnPipe.PipeTargetStateMachineParametersProperty(
                    invocation_type="FIRE_AND_FORGET"),
                # The run reads the whole input prefix, not the batch: pass each record's id only, so a
                # batch of 100 stays far below Step Functions' 256 KiB input limit.
                input_template='{"messageId": <$.messageId>}'))

"""Training: the Glue 5.1 PySpark job from glue_jobs/, its security configuration, the workflow
that runs it when new ratings land (EventBridge -> EVENT trigger), and its optional schedule."""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import names, recommender_job
from stacks.constructs import ROOT, GlueWorkflowTarget
from stacks.nag import acknowledge, managed_policy
from stacks.network import ExistingVpc, admit_to_database, resolve_vpc
from stacks.recommender_job import GLUE_WORKER_TYPES, JobData, JobOptions, RecommenderJob, new_data_pattern
from stacks.storage import bucket_name


class TrainingStack(Stack):
    """`options.emr`: EMR Serverless is the runtime that new data starts, so the workflow here
    keeps its EVENT trigger but no rule feeds it."""

    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, vpc: ec2.IVpc | ExistingVpc,
                 data: JobData, options: JobOptions, **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = resolve_vpc(self, vpc)
        raw = s3.Bucket.from_bucket_name(self, "Raw", bucket_name(prefix, "raw"))
        recommender = RecommenderJob(
            self, "Recommender", prefix=prefix, assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="The recommender Glue job: reads raw, writes curated and the table", key=key,
            data=data, options=options)
        self.role = recommender.role
        self.allow_glue_service()
        security = glue.SecurityConfiguration(
            self, "Security", security_configuration_name=f"{prefix}-job",
            s3_encryption=glue.S3Encryption.kms(key), cloud_watch_encryption=glue.CloudWatchEncryption.kms(key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(key))
        connection = self.vpc_connection(prefix, vpc, data.db_security_group)
        package = recommender.package
        self.job = glue.PySparkEtlJob(
            self, "Job", job_name=f"{prefix}-recommender", role=self.role,
            script=glue.Code.from_asset(str(ROOT / "glue_jobs" / "glue_entry.py")),
            glue_version=glue.GlueVersion.V5_1,
            worker_configuration=glue.WorkerConfiguration(worker_type=GLUE_WORKER_TYPES[options.worker_type],
                                                          number_of_workers=options.workers),
            timeout=Duration.minutes(options.timeout_minutes),
            # Glue forbids retries with run queuing: a failed run is retried by the next trigger.
            max_retries=0,
            extra_python_files=[glue.Code.from_bucket(package.bucket, package.s3_object_key)],
            max_concurrent_runs=1, security_configuration=security, connections=[connection],
            default_arguments=recommender.arguments, job_run_queuing_enabled=True,
            description="Trains bias-aware ALS and publishes top-N recommendations")
        self.workflow = self.triggers(prefix, raw, options)

    def allow_glue_service(self) -> None:
        """What Glue itself does as the job role, beside the job's data grants."""
        self.role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSGlueServiceRole"))
        # With CloudWatch encryption in the security configuration, Glue associates the key with the
        # job's log groups as the job role: https://docs.aws.amazon.com/glue/latest/dg/encryption-security-configuration.html
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:AssociateKmsKey"],
            resources=[self.format_arn(service="logs", resource="log-group", resource_name="/aws-glue/*",
                                       arn_format=ArnFormat.COLON_RESOURCE_NAME)]))
        acknowledge(self.role, managed_policy("service-role/AWSGlueServiceRole"),
                    "AWS's documented policy for Glue job roles (Glue's own API calls, ENIs in the VPC, its logs); "
                    "data access is granted separately and per bucket.")
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
                    "<AWS::AccountId>:log-group:/aws-glue/*]",
                    "Glue names the job's log groups under /aws-glue/ itself; only AssociateKmsKey is granted.")

    def vpc_connection(self, prefix: str, vpc: ec2.IVpc,
                       db_security_group: ec2.ISecurityGroup | None) -> glue.Connection:
        """Runs the job's workers in an isolated subnet, admitted to Aurora."""
        job_sg = ec2.SecurityGroup(self, "JobSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                   description="Glue job ENIs: Spark needs all ports between its own workers")
        job_sg.add_ingress_rule(job_sg, ec2.Port.all_tcp(), "Spark traffic between the job's own workers")
        if db_security_group is not None:
            admit_to_database(self, "DbFromJob", database=db_security_group, client=job_sg,
                              description="Glue job publishes to Aurora")
        return glue.Connection(
            self, "VpcConnection", type=glue.ConnectionType.NETWORK, connection_name=f"{prefix}-vpc",
            security_groups=[job_sg], network=glue.ConnectionNetwork.subnet(vpc.isolated_subnets[0]),
            description="Runs the job inside the VPC so it reaches Aurora through private subnets")

    def triggers(self, prefix: str, raw: s3.IBucket, options: JobOptions) -> glue.CfnWorkflow:
        """The workflow whose EVENT trigger batches new raw objects into one run, and the schedule."""
        workflow = glue.CfnWorkflow(self, "Workflow", name=f"{prefix}-training",
                                    description="Retrains when new ratings land", max_concurrent_runs=1)
        CfnOutput(self, names.OUTPUT_WORKFLOW, value=workflow.ref)  # make smoke waits on its runs
        glue.CfnTrigger(self, "OnNewData", name=f"{prefix}-on-new-data", type="EVENT",
                        workflow_name=workflow.ref,
                        actions=[glue.CfnTrigger.ActionProperty(job_name=self.job.job_name,
                                                                arguments=recommender_job.NEW_DATA_ARGUMENTS)],
                        event_batching_condition=glue.CfnTrigger.EventBatchingConditionProperty(
                            batch_size=options.trigger_batch_size, batch_window=options.trigger_batch_window_s))
        if not options.emr:
            events.Rule(
                self, "RawObjectCreated", description="New ratings in the raw bucket start the training workflow",
                event_pattern=new_data_pattern(raw),
                targets=[GlueWorkflowTarget(workflow.ref)])  # type: ignore[list-item]
        if options.schedule:
            # A workflow has exactly one start trigger (https://docs.aws.amazon.com/glue/latest/dg/
            # workflows_overview.html), the EVENT one above: the schedule starts the job directly.
            # The job's max_concurrent_runs=1 with run queuing keeps it from overlapping a new-data run.
            glue.CfnTrigger(self, "Scheduled", name=f"{prefix}-scheduled", type="SCHEDULED",
                            schedule=options.schedule, start_on_creation=True,
                            description="Retrains on a schedule, new data or not",
                            actions=[glue.CfnTrigger.ActionProperty(job_name=self.job.job_name,
                                                                    arguments=recommender_job.SCHEDULED_ARGUMENTS)])
        return workflow

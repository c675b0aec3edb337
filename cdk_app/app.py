"""The CDK app: `cdk synth -c env=dev|prod`. Builds settings once, wires the stacks, and runs
cdk-nag's AwsSolutions pack as a policy-validation plugin over the whole app."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack, Tags, Validations
from aws_cdk import aws_ec2 as ec2
from cdk_nag import AwsSolutionsChecks

from cdk_app.config import Settings, settings_from_context
from stacks import names
from stacks.analytics import AnalyticsStack
from stacks.emr import EmrStack
from stacks.ingestion import IngestionStack
from stacks.monitoring import MonitoringStack
from stacks.network import ExistingVpc, NetworkStack
from stacks.recommender_job import JobData
from stacks.serving import ServingStack
from stacks.storage import StorageStack
from stacks.training import TrainingStack

# cfn-lint's schemas reject Tags on these two types, although CDK renders them.
UNTAGGABLE = ["AWS::CloudWatch::Dashboard", "AWS::Glue::Connection"]


def build(app: App, settings: Settings) -> dict[str, Stack]:
    """Every stack of one environment, by part (storage, network, serving, ...). Each stack gets
    its own options from `settings` and, from the stacks before it, what it reads or writes."""
    env = Environment(account=app.node.try_get_context("account"), region=app.node.try_get_context("region"))
    p, retention = settings.prefix, settings.log_retention
    stacks: dict[str, Stack] = {}
    storage = stacks["storage"] = StorageStack(app, f"{p}-storage", prefix=p, retain_data=settings.retain_data,
                                               env=env)
    key = storage.key
    vpc: ec2.IVpc | ExistingVpc
    if settings.vpc_id:
        vpc = ExistingVpc(settings.vpc_id, settings.vpc_azs, settings.vpc_subnet_ids)
    else:
        network = stacks["network"] = NetworkStack(app, f"{p}-network", key=key, log_retention=retention, env=env)
        vpc = network.vpc
    serving = stacks["serving"] = ServingStack(
        app, f"{p}-serving", prefix=p, key=key, retain_data=settings.retain_data,
        deletion_protection=settings.deletion_protection, log_retention=retention, options=settings.serving, env=env)
    analytics = stacks["analytics"] = AnalyticsStack(
        app, f"{p}-analytics", prefix=p, key=key, vpc=vpc, retain_data=settings.retain_data,
        deletion_protection=settings.deletion_protection, log_retention=retention, options=settings.analytics,
        env=env)
    input_prefix = names.RATINGS_PREFIX
    if settings.dms:
        ingestion = stacks["ingestion"] = IngestionStack(
            app, f"{p}-ingestion", prefix=p, key=key, vpc=vpc, source=settings.dms,
            multi_az=settings.deletion_protection, log_retention=retention, env=env)
        ingestion.add_stack_dependency(storage, "imports the raw bucket by name")
        input_prefix = ingestion.input_prefix
    data = JobData(input_prefix=input_prefix, table_name=serving.table.table_name, table_arn=serving.table.table_arn,
                   db_secret_arn=analytics.secret.secret_arn if analytics.secret else None,
                   db_security_group=analytics.security_group)
    training = stacks["training"] = TrainingStack(app, f"{p}-training", prefix=p, key=key, vpc=vpc, data=data,
                                                  options=settings.job, env=env)
    training.add_stack_dependency(storage, "imports the buckets by name")
    emr_machine_arn: str | None = None  # failures of EMR runs reach the failure notifier too
    if settings.job.emr:
        emr = stacks["emr"] = EmrStack(app, f"{p}-emr", prefix=p, key=key, vpc=vpc, data=data, options=settings.job,
                                       log_retention=retention, env=env)
        emr.add_stack_dependency(storage, "imports the buckets by name")
        emr_machine_arn = emr.state_machine.state_machine_arn
    stacks["monitoring"] = MonitoringStack(
        app, f"{p}-monitoring", prefix=p, key=key, job_name=training.job.job_name, api=serving.api,
        api_function=serving.api_function, alarm_email=settings.alarm_email, log_retention=retention,
        emr_state_machine_arn=emr_machine_arn, env=env)
    for stack in stacks.values():
        Tags.of(stack).add("project", "music-recommender", exclude_resource_types=UNTAGGABLE)
        Tags.of(stack).add("environment", settings.env_name, exclude_resource_types=UNTAGGABLE)
    return stacks


def main() -> None:
    app = App()
    settings = settings_from_context(app.node.try_get_context)
    build(app, settings)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()

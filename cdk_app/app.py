"""The CDK app: `cdk synth -c env=dev|prod`. Builds settings once, wires the stacks, and runs
cdk-nag's AwsSolutions pack as a policy-validation plugin over the whole app."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack, Tags, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks

from cdk_app.config import Settings, settings_from_context
from stacks import names
from stacks.analytics import AnalyticsStack
from stacks.emr import EmrStack
from stacks.ingestion import IngestionStack, dms_input_prefix
from stacks.monitoring import MonitoringStack
from stacks.network import ExistingVpc, NetworkStack
from stacks.serving import ServingStack
from stacks.storage import StorageStack
from stacks.training import TrainingStack

RETENTION = {7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
             90: logs.RetentionDays.THREE_MONTHS, 180: logs.RetentionDays.SIX_MONTHS,
             365: logs.RetentionDays.ONE_YEAR, 731: logs.RetentionDays.TWO_YEARS}


def build(app: App, settings: Settings) -> dict[str, Stack]:
    env = Environment(account=app.node.try_get_context("account"), region=app.node.try_get_context("region"))
    p = settings.prefix
    retention = RETENTION[settings.log_retention_days]
    stacks: dict[str, Stack] = {}
    storage = StorageStack(app, f"{p}-storage", prefix=p, retain_data=settings.retain_data, env=env)
    vpc: ec2.IVpc | ExistingVpc
    if settings.vpc_id:
        vpc = ExistingVpc(settings.vpc_id, settings.vpc_azs, settings.vpc_subnet_ids)
    else:
        network = NetworkStack(app, f"{p}-network", key=storage.key, log_retention=retention, env=env)
        stacks["network"] = network
        vpc = network.vpc
    serving = ServingStack(app, f"{p}-serving", prefix=p, key=storage.key, retain_data=settings.retain_data,
                           deletion_protection=settings.deletion_protection, log_retention=retention,
                           api_auth=settings.api_auth, jwt_issuer=settings.jwt_issuer,
                           jwt_audience=settings.jwt_audience,
                           reserved_concurrency=settings.api_reserved_concurrency, env=env)
    analytics = AnalyticsStack(app, f"{p}-analytics", prefix=p, key=storage.key, vpc=vpc,
                               retain_data=settings.retain_data, deletion_protection=settings.deletion_protection,
                               min_acu=settings.aurora_min_acu, max_acu=settings.aurora_max_acu,
                               log_retention=retention, quicksight_principal_arn=settings.quicksight_principal_arn,
                               env=env)
    input_prefix = names.RATINGS_PREFIX
    if settings.dms:
        ingestion = IngestionStack(app, f"{p}-ingestion", prefix=p, key=storage.key, vpc=vpc, source=settings.dms,
                                   multi_az=settings.deletion_protection, log_retention=retention, env=env)
        ingestion.add_stack_dependency(storage, "imports the raw bucket by name")
        stacks["ingestion"] = ingestion
        input_prefix = dms_input_prefix(settings.dms)
    training = TrainingStack(
        app, f"{p}-training", prefix=p, key=storage.key, table_name=serving.table.table_name,
        table_arn=serving.table.table_arn,
        vpc=vpc, db_secret_arn=analytics.secret.secret_arn if analytics.secret else None,
        db_security_group=analytics.security_group, worker_type=settings.glue_worker_type,
        workers=settings.glue_workers, timeout_minutes=settings.glue_timeout_minutes,
        trigger_batch_size=settings.trigger_batch_size,
        trigger_batch_window_s=settings.trigger_batch_window_s, schedule=settings.schedule,
        input_prefix=input_prefix, job_arguments=settings.job_arguments,
        new_data_trigger=not settings.emr, env=env)
    training.add_stack_dependency(storage, "imports the buckets by name")
    emr_machine_arn: str | None = None  # failures of EMR runs reach the failure notifier too
    if settings.emr:
        emr_stack = EmrStack(app, f"{p}-emr", prefix=p, key=storage.key, table_arn=serving.table.table_arn,
                             table_name=serving.table.table_name, vpc=vpc,
                             db_secret_arn=analytics.secret.secret_arn if analytics.secret else None,
                             db_security_group=analytics.security_group, input_prefix=input_prefix,
                             workers=settings.glue_workers, timeout_minutes=settings.glue_timeout_minutes,
                             job_arguments=settings.job_arguments, trigger_batch_size=settings.trigger_batch_size,
                             trigger_batch_window_s=settings.trigger_batch_window_s, log_retention=retention,
                             env=env)
        emr_stack.add_stack_dependency(storage, "imports the buckets by name")
        stacks["emr"] = emr_stack
        emr_machine_arn = emr_stack.state_machine.state_machine_arn
    monitoring = MonitoringStack(app, f"{p}-monitoring", prefix=p, key=storage.key, job_name=training.job.job_name,
                                 api=serving.api, api_function=serving.api_function,
                                 alarm_email=settings.alarm_email, log_retention=retention,
                                 emr_state_machine_arn=emr_machine_arn, env=env)
    stacks.update({"storage": storage, "serving": serving, "analytics": analytics, "training": training,
                   "monitoring": monitoring})
    # cfn-lint's schemas reject Tags on these two types, although CDK renders them.
    untaggable = ["AWS::CloudWatch::Dashboard", "AWS::Glue::Connection"]
    for stack in stacks.values():
        Tags.of(stack).add("project", "music-recommender", exclude_resource_types=untaggable)
        Tags.of(stack).add("environment", settings.env_name, exclude_resource_types=untaggable)
    return stacks


def main() -> None:
    app = App()
    settings = settings_from_context(app.node.try_get_context)
    build(app, settings)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()

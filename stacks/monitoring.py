"""Monitoring: an SNS topic for failures, alarms on the job and the API, one dashboard."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.constructs import POWERTOOLS, PythonFunction
from stacks.encryption import allow_publisher
from stacks.nag import acknowledge


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, prefix: str, key: kms.IKey, job_name: str,
                 api: apigw.HttpApi, api_function: lambda_.IFunction, alarm_email: str | None,
                 log_retention: logs.RetentionDays, emr_state_machine_arn: str | None = None,
                 **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        self.topic = sns.Topic(self, "Failures", topic_name=f"{prefix}-failures", master_key=key,
                               enforce_ssl=True, display_name="Recommender pipeline failures")
        # The alarms below publish as CloudWatch itself, not as a role of ours.
        allow_publisher(self.topic, key, "cloudwatch.amazonaws.com")
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.failure_notifier(key, job_name, emr_state_machine_arn, log_retention)
        failed_tasks = cw.Metric(namespace="Glue", metric_name="glue.driver.aggregate.numFailedTasks",
                                 dimensions_map={"JobName": job_name, "JobRunId": "ALL", "Type": "count"},
                                 statistic="Sum", period=Duration.hours(1))
        api_5xx = api.metric_server_error(period=Duration.minutes(5), statistic="Sum")
        api_latency = api.metric_latency(period=Duration.minutes(5), statistic="p99")
        alarms = [
            cw.Alarm(self, "ApiErrors", metric=api_5xx, threshold=5, evaluation_periods=1,
                     alarm_description="The recommendations API returned 5xx responses",
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            cw.Alarm(self, "ApiLatency", metric=api_latency, threshold=500, evaluation_periods=3,
                     alarm_description="p99 latency of the recommendations API above 500 ms",
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            cw.Alarm(self, "FunctionErrors", metric=api_function.metric_errors(period=Duration.minutes(5)),
                     threshold=1, evaluation_periods=1, alarm_description="The API function raised errors",
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{prefix}-pipeline")
        dashboard.add_widgets(
            cw.GraphWidget(title="API requests and 5xx", left=[api.metric_count(period=Duration.minutes(5)), api_5xx]),
            cw.GraphWidget(title="API p99 latency (ms)", left=[api_latency]),
            cw.GraphWidget(title="Glue failed tasks", left=[failed_tasks]),
            cw.AlarmStatusWidget(title="Alarms", alarms=alarms))

    def failure_notifier(self, key: kms.IKey, job_name: str, emr_state_machine_arn: str | None,
                         log_retention: logs.RetentionDays) -> None:
        """Glue (and Step Functions, for EMR runs) report state changes to EventBridge; a function
        turns a failed run into a readable notice (the error, the duration, a link) on the topic."""
        notifier = PythonFunction(self, "FailureNotifier", name="failure_notifier", key=key,
                                  log_retention=log_retention, vendored=POWERTOOLS, timeout_s=30,
                                  asynchronous=True,
                                  environment={"TOPIC_ARN": self.topic.topic_arn,
                                               "POWERTOOLS_SERVICE_NAME": "failure-notifier"})
        self.topic.grant_publish(notifier.function)
        notifier.function.add_to_role_policy(iam.PolicyStatement(
            actions=["glue:GetJobRun"], resources=[self.format_arn(service="glue", resource="job",
                                                                   resource_name=job_name)]))
        events.Rule(self, "JobFailed", description="A recommender Glue run failed or timed out",
                    event_pattern=events.EventPattern(
                        source=["aws.glue"], detail_type=["Glue Job State Change"],
                        detail={"jobName": [job_name], "state": ["FAILED", "TIMEOUT", "ERROR"]}),
                    targets=[targets.LambdaFunction(notifier.function, retry_attempts=2)])
        if emr_state_machine_arn:
            # An EMR Serverless run ends its Step Functions execution as FAILED, TIMED_OUT or ABORTED.
            events.Rule(self, "EmrTrainingFailed", description="A recommender EMR Serverless run did not succeed",
                        event_pattern=events.EventPattern(
                            source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
                            detail={"stateMachineArn": [emr_state_machine_arn],
                                    "status": ["FAILED", "TIMED_OUT", "ABORTED"]}),
                        targets=[targets.LambdaFunction(notifier.function, retry_attempts=2)])
        acknowledge(notifier.function, "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                    "Publishing to the KMS-encrypted topic: CDK's grant on this project's key only.")

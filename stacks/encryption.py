"""What AWS services need in a key policy or a topic policy before they can use the project's key.

IAM grants do not cover AWS services acting for themselves: CloudWatch Logs encrypting a log
group, CloudWatch alarms and EventBridge publishing to an encrypted topic. Each needs a statement
in the resource's own policy, or the deploy (log groups) or the first notification (topics) fails.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns


def allow_cloudwatch_logs(key: kms.IKey) -> None:
    """CloudWatch Logs uses the key for the log groups of this account and region only
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html)."""
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="CloudWatchLogsEncryptsThisAccountsLogGroups",
        principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        resources=["*"],
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"}}))


def allow_publisher(topic: sns.Topic, key: kms.IKey, service: str) -> None:
    """Lets an AWS service publish to an encrypted topic: sns:Publish in the topic policy (which
    `enforce_ssl` otherwise leaves holding only a Deny), kms:Decrypt and kms:GenerateDataKey* in the
    key policy (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
    #compatibility-with-aws-services), both for this account only. Not for EventBridge: its KMS
    requests carry no aws:SourceAccount, so that condition would drop every event
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions);
    CDK's event targets grant it without one."""
    account = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
    topic.add_to_resource_policy(iam.PolicyStatement(
        sid=f"{service.split('.')[0].capitalize()}Publishes", principals=[iam.ServicePrincipal(service)],
        actions=["sns:Publish"], resources=[topic.topic_arn], conditions=account))
    key.add_to_resource_policy(iam.PolicyStatement(
        sid=f"{service.split('.')[0].capitalize()}PublishesToEncryptedTopics",
        principals=[iam.ServicePrincipal(service)], actions=["kms:Decrypt", "kms:GenerateDataKey*"],
        resources=["*"], conditions=account))

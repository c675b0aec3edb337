"""Deploy-time rules for keys, topics, log groups and functions: what AWS checks when it creates
them or first uses them, which cdk-nag and cfn-lint cannot see. Each rule cites the page it encodes
and holds for every template variant (dev defaults, prod with every option on)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from stacks.serving import LAMBDA_DEFAULT_CONCURRENCY, LAMBDA_UNRESERVED_MINIMUM
from tests.infra.cfn import (
    Ref,
    action_matches,
    as_list,
    render,
    resolve,
    resources_of,
    service_principals,
    statements,
    template,
)
from tests.infra.conftest import Built

pytestmark = pytest.mark.infra

LOGS = "logs.<AWS::Region>.amazonaws.com"
LOGS_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:DescribeKey")
PUBLISH_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


def allows(statement: dict[str, Any], action: str) -> bool:
    return statement.get("Effect") == "Allow" and action_matches(action, statement.get("Action", []))


def key_statements(built: Built, key: Ref, service: str) -> list[dict[str, Any]]:
    policy = key.resource(built)["Properties"]["KeyPolicy"]
    return [s for s in statements(policy) if service in service_principals(s)]


def log_group_arn(built: Built, group: Ref) -> str:
    name = group.resource(built)["Properties"].get("LogGroupName")
    return f"arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:{render(name) if name else 'generated'}"


def encrypted_log_destinations(built: Built) -> list[tuple[str, str, Ref]]:
    """(what, log group ARN, key) for every log group with a key and every Glue security
    configuration that encrypts its CloudWatch logs (Glue's /aws-glue/* groups)."""
    out = []
    for ref, group in resources_of(built, "AWS::Logs::LogGroup"):
        key_id = group["Properties"].get("KmsKeyId")
        if key_id is not None:
            key = resolve(built, ref.stack, key_id)
            assert key is not None, f"{ref}: KmsKeyId {render(key_id)} is no key of this app"
            out.append((f"{ref.stack}/{ref.logical_id}", log_group_arn(built, ref), key))
    for ref, config in resources_of(built, "AWS::Glue::SecurityConfiguration"):
        cw = config["Properties"]["EncryptionConfiguration"].get("CloudWatchEncryption", {})
        if cw.get("CloudWatchEncryptionMode") == "SSE-KMS":
            key = resolve(built, ref.stack, cw["KmsKeyArn"])
            assert key is not None
            out.append((f"{ref.stack}/{ref.logical_id}",
                        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws-glue/jobs/x", key))
    return out


def test_every_log_group_is_encrypted_with_a_key_of_this_app(variant: Built) -> None:
    """DESIGN: encryption at rest with the project's key everywhere, the VPC flow logs included."""
    groups = list(resources_of(variant, "AWS::Logs::LogGroup"))
    assert groups, "no log group found: the rule would check nothing"
    plain = [f"{ref.stack}/{ref.logical_id}" for ref, group in groups if "KmsKeyId" not in group["Properties"]]
    assert plain == []


def test_cloudwatch_logs_may_use_the_key_of_every_encrypted_log_group(variant: Built) -> None:
    """CloudWatch Logs must be allowed in the key policy, for log groups of this account and Region
    (condition on kms:EncryptionContext:aws:logs:arn), or creating the log group fails with "The
    specified KMS key does not exist or is not allowed to be used":
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html"""
    destinations = encrypted_log_destinations(variant)
    assert destinations, "no encrypted log group found: the rule would check nothing"
    for what, arn, key in destinations:
        stmts = key_statements(variant, key, LOGS)
        assert stmts, f"{what}: the key {key.logical_id} does not let {LOGS} in"
        for action in LOGS_ACTIONS:
            assert any(allows(s, action) for s in stmts), f"{what}: {action} missing for {LOGS}"
        patterns = [render(v) for s in stmts for v in
                    as_list(s.get("Condition", {}).get("ArnLike", {}).get("kms:EncryptionContext:aws:logs:arn", []))]
        assert any(fnmatchcase(arn, p) for p in patterns), f"{what}: {arn} not covered by {patterns}"


def publishers(built: Built) -> list[tuple[str, str, Ref]]:
    """(who, service principal, topic or queue) for every AWS service that delivers to a topic or a
    queue of this app: alarm actions (CloudWatch) and EventBridge rule targets."""
    out = []
    for ref, alarm in resources_of(built, "AWS::CloudWatch::Alarm"):
        for field in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in alarm["Properties"].get(field, []):
                target = resolve(built, ref.stack, action)
                if target is not None:
                    out.append((f"{ref.stack}/{ref.logical_id}", "cloudwatch.amazonaws.com", target))
    for ref, rule in resources_of(built, "AWS::Events::Rule"):
        for t in rule["Properties"].get("Targets", []):
            target = resolve(built, ref.stack, t["Arn"])
            if target is not None and target.resource(built)["Type"] in ("AWS::SNS::Topic", "AWS::SQS::Queue"):
                out.append((f"{ref.stack}/{ref.logical_id}", "events.amazonaws.com", target))
    return out


def resource_policy_statements(built: Built, target: Ref) -> list[dict[str, Any]]:
    kind = target.resource(built)["Type"]
    policy_type, field, document = {"AWS::SNS::Topic": ("AWS::SNS::TopicPolicy", "Topics", "PolicyDocument"),
                                    "AWS::SQS::Queue": ("AWS::SQS::QueuePolicy", "Queues", "PolicyDocument")}[kind]
    out = []
    for ref, policy in resources_of(built, policy_type):
        if any(resolve(built, ref.stack, t) == target for t in policy["Properties"][field]):
            out += statements(policy["Properties"][document])
    return out


def test_every_service_that_publishes_to_a_topic_or_queue_is_let_in(variant: Built) -> None:
    """A topic policy that holds only enforce_ssl's Deny admits no service: CloudWatch alarms and
    EventBridge need sns:Publish (sqs:SendMessage) in the resource policy, CloudWatch's scoped by
    aws:SourceAccount (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
    Notify_Users_Alarm_Changes.html, https://docs.aws.amazon.com/eventbridge/latest/userguide/
    eb-use-resource-based.html#eb-sns-permissions). When the topic or queue is encrypted, the key
    policy must let the same service use the key (https://docs.aws.amazon.com/sns/latest/dg/
    sns-key-management.html#compatibility-with-aws-services)."""
    found = publishers(variant)
    assert any(service == "cloudwatch.amazonaws.com" for _, service, _ in found), "the alarms publish nowhere"
    for who, service, target in found:
        kind = target.resource(variant)["Type"]
        action = "sns:Publish" if kind == "AWS::SNS::Topic" else "sqs:SendMessage"
        stmts = [s for s in resource_policy_statements(variant, target)
                 if service in service_principals(s) and allows(s, action)]
        assert stmts, f"{who}: {target.logical_id}'s policy does not let {service} {action}"
        if service == "cloudwatch.amazonaws.com":
            assert all("aws:SourceAccount" in json.dumps(s.get("Condition", {})) for s in stmts), \
                f"{who}: {service} may publish for any account"
        key_id = target.resource(variant)["Properties"].get("KmsMasterKeyId")
        if key_id is not None:
            key = resolve(variant, target.stack, key_id)
            assert key is not None
            key_stmts = key_statements(variant, key, service)
            for needed in PUBLISH_ACTIONS:
                assert any(allows(s, needed) for s in key_stmts), \
                    f"{who}: the key of {target.logical_id} does not let {service} {needed}"
            if service == "events.amazonaws.com":
                # EventBridge's KMS requests carry no aws:SourceAccount/SourceArn: such a condition drops
                # every event (eb-use-resource-based.html, "Amazon SNS permissions").
                assert not any("aws:Source" in json.dumps(s.get("Condition", {})) for s in key_stmts)


def test_every_key_lets_in_exactly_the_services_that_use_it(variant: Built) -> None:
    """Least privilege in key policies: a service principal is named only where a resource of this
    app needs it (the two rules above), and every such need is met."""
    needed: dict[Ref, set[str]] = {}
    for _, _, key in encrypted_log_destinations(variant):
        needed.setdefault(key, set()).add(LOGS)
    for _, service, target in publishers(variant):
        key_id = target.resource(variant)["Properties"].get("KmsMasterKeyId")
        key = resolve(variant, target.stack, key_id) if key_id is not None else None
        if key is not None:
            needed.setdefault(key, set()).add(service)
    keys = list(resources_of(variant, "AWS::KMS::Key"))
    assert keys
    for ref, key in keys:
        named = {p for s in statements(key["Properties"]["KeyPolicy"]) for p in service_principals(s)}
        assert named == needed.get(ref, set()), f"{ref.stack}/{ref.logical_id}"


def own_functions(built: Built) -> dict[Ref, dict[str, Any]]:
    """The project's functions (code under lambdas/), not CDK's framework handlers."""
    return {ref: fn for ref, fn in resources_of(built, "AWS::Lambda::Function")
            if str(fn["Properties"].get("Handler", "")).startswith("lambdas.")}


def asynchronously_invoked(built: Built) -> dict[Ref, str]:
    """Functions that EventBridge rules target or that back custom resources: both services invoke
    asynchronously (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html)."""
    out: dict[Ref, str] = {}
    for ref, rule in resources_of(built, "AWS::Events::Rule"):
        for t in rule["Properties"].get("Targets", []):
            fn = resolve(built, ref.stack, t["Arn"])
            if fn is not None:
                out[fn] = f"target of {ref.stack}/{ref.logical_id}"
    for stack in built.stacks:
        for logical_id, resource in template(built, stack)["Resources"].items():
            if resource["Type"].startswith("Custom::") or resource["Type"] == "AWS::CloudFormation::CustomResource":
                fn = resolve(built, stack, resource["Properties"].get("ServiceToken"))
                if fn is not None:
                    out[fn] = f"custom resource {stack}/{logical_id}"
    return out


def test_every_asynchronously_invoked_function_keeps_failed_events(variant: Built) -> None:
    """After its retries Lambda drops a failed asynchronous event unless the function has a
    dead-letter queue or an on-failure destination
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). Lambda sends
    as the function's role, so the role needs sqs:SendMessage and, for an encrypted queue,
    kms:GenerateDataKey and kms:Decrypt on its key
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html)."""
    ours = own_functions(variant)
    invoked = {ref: why for ref, why in asynchronously_invoked(variant).items() if ref in ours}
    assert invoked, "no asynchronously invoked function found: the rule would check nothing"
    for ref, why in invoked.items():
        props = ours[ref]["Properties"]
        dlq = props.get("DeadLetterConfig", {}).get("TargetArn")
        configs = [c for r, c in resources_of(variant, "AWS::Lambda::EventInvokeConfig")
                   if resolve(variant, r.stack, c["Properties"]["FunctionName"]) == ref
                   and c["Properties"].get("DestinationConfig", {}).get("OnFailure")]
        assert dlq or configs, f"{ref.logical_id} ({why}) drops events that still fail after retries"
        if dlq:
            queue = resolve(variant, ref.stack, dlq)
            assert queue is not None and queue.resource(variant)["Properties"].get("KmsMasterKeyId"), ref
            key = resolve(variant, queue.stack, queue.resource(variant)["Properties"]["KmsMasterKeyId"])
            role = resolve(variant, ref.stack, props["Role"])
            role_statements = [(r, s) for r, p in resources_of(variant, "AWS::IAM::Policy")
                               if any(resolve(variant, r.stack, x) == role for x in p["Properties"].get("Roles", []))
                               for s in statements(p["Properties"]["PolicyDocument"])]
            for action, resource in (("sqs:SendMessage", queue), ("kms:GenerateDataKey", key), ("kms:Decrypt", key)):
                assert any(allows(s, action) and any(resolve(variant, r.stack, x) == resource
                                                     for x in as_list(s["Resource"]))
                           for r, s in role_statements), f"{ref.logical_id}'s role lacks {action} for its DLQ"


def test_reserved_concurrency_caps_the_api_and_fits_the_account_quota(variant: Built) -> None:
    """The API function has the configured cap (prod: on; dev: off, since a new account's quota can
    be below 100 + any cap); all caps together leave the 100 unreserved executions Lambda insists
    on, within the default quota of 1,000 (otherwise the function fails to create:
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html)."""
    ours = own_functions(variant)
    api = [fn for fn in ours.values() if fn["Properties"]["Handler"].startswith("lambdas.recommendations_api.")]
    assert len(api) == 1
    assert api[0]["Properties"].get("ReservedConcurrentExecutions", 0) == variant.settings.serving.reserved_concurrency
    if variant.settings.env_name == "prod":
        assert variant.settings.serving.reserved_concurrency > 0
    reserved = sum(fn["Properties"].get("ReservedConcurrentExecutions", 0)
                   for _, fn in resources_of(variant, "AWS::Lambda::Function"))
    assert reserved <= LAMBDA_DEFAULT_CONCURRENCY - LAMBDA_UNRESERVED_MINIMUM


def test_no_log_retention_helper_function_where_a_log_group_does_the_job(variant: Built) -> None:
    """CDK's LogRetention helper is a Lambda function with a wildcard policy that edits log groups
    after the fact; an explicit AWS::Logs::LogGroup with RetentionInDays does the same in the template."""
    helpers = [f"{ref.stack}/{ref.logical_id}" for ref, _ in resources_of(variant, "Custom::LogRetention")]
    assert helpers == []


def test_the_access_log_bucket_is_versioned(variant: Built) -> None:
    """A careful platform team's check (AWS Config s3-bucket-versioning-enabled): server access logs
    can be overwritten or deleted like any object, so they are versioned too."""
    buckets = [b for _, b in resources_of(variant, "AWS::S3::Bucket")]
    unversioned = [b["Properties"].get("BucketName", "access-logs") for b in buckets
                   if b["Properties"].get("VersioningConfiguration", {}).get("Status") != "Enabled"]
    assert unversioned == []

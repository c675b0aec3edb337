"""Reusable constructs: Lambda code bundled with the shared contracts, a Glue workflow as an
EventBridge target (CDK has no target class for it), and the project's Python function."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.nag import acknowledge, managed_policy

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"
SHARED = (ROOT / "glue_jobs" / "__init__.py", ROOT / "glue_jobs" / "contracts.py")
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14  # the newest Python the pinned aws-cdk-lib knows


# Pure-Python dependencies shipped inside code packages: the Glue job and the schema function
# run in isolated subnets with no route to PyPI.
VENDORED = ("sqlalchemy", "pymysql", "typing_extensions")
# Powertools (and the X-Ray SDK its tracer uses) for the functions, pure Python as well.
POWERTOOLS = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "typing_extensions", "jmespath")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")


@jsii.implements(ILocalBundling)
class LocalCopy:
    """Bundles by copying, without Docker or network: a function's folder, then either the
    shared contracts or the whole glue_jobs package, then vendored modules from this venv."""

    def __init__(self, folder: Path | None, *, whole_package: bool = False, vendored: tuple[str, ...] = ()) -> None:
        self.folder, self.whole_package, self.vendored = folder, whole_package, vendored

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        out = Path(output_dir)
        if self.folder is not None:
            # Same import path as in the repository: lambdas.<name>.handler
            shutil.copytree(self.folder, out / "lambdas" / self.folder.name, dirs_exist_ok=True, ignore=_IGNORE)
            shutil.copy2(LAMBDAS / "__init__.py", out / "lambdas" / "__init__.py")
            shutil.copy2(LAMBDAS / "custom_resource.py", out / "lambdas" / "custom_resource.py")
        if self.whole_package:
            shutil.copytree(ROOT / "glue_jobs", out / "glue_jobs", ignore=_IGNORE, dirs_exist_ok=True)
        else:
            (out / "glue_jobs").mkdir(exist_ok=True)
            for path in SHARED:
                shutil.copy2(path, out / "glue_jobs" / path.name)
        for name in self.vendored:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise RuntimeError(f"{name} is not installed: run `make install` before synth")
            origin = Path(spec.origin)
            if origin.name == "__init__.py":
                shutil.copytree(origin.parent, out / name, ignore=_IGNORE, dirs_exist_ok=True)
            else:
                shutil.copy2(origin, out / origin.name)
        return True


def bundling(local: LocalCopy) -> BundlingOptions:
    return BundlingOptions(image=DockerImage.from_registry("unused-local-bundling"), local=local)  # type: ignore[arg-type]


def function_code(name: str, *, whole_package: bool = False, vendored: tuple[str, ...] = ()) -> lambda_.Code:
    folder = LAMBDAS / name
    return lambda_.Code.from_asset(str(folder), asset_hash_type=AssetHashType.OUTPUT,
                                   bundling=bundling(LocalCopy(folder, whole_package=whole_package,
                                                               vendored=vendored)))


def encrypted_queue(scope: Construct, id_: str, *, key: kms.IKey, **extra: Any) -> sqs.Queue:
    """A queue under the project's key that refuses plain HTTP (cdk-nag SQS2/SQS4)."""
    return sqs.Queue(scope, id_, encryption=sqs.QueueEncryption.KMS, encryption_master_key=key, enforce_ssl=True,
                     **extra)


class PythonFunction(Construct):
    """A function from lambdas/<name>/handler.py with its own log group, retention and tracing.

    `asynchronous`: invoked by a service that does not wait for the answer (EventBridge,
    CloudFormation custom resources), so an event that still fails after Lambda's retries goes to
    an encrypted dead-letter queue instead of being dropped.
    `reserved_concurrency`: a cap on concurrent executions (None: the account's unreserved pool).
    """

    def __init__(self, scope: Construct, id_: str, *, name: str, environment: dict[str, str],
                 log_retention: logs.RetentionDays, key: kms.IKey, timeout_s: int = 10,
                 memory_mb: int = 256, whole_package: bool = False, vendored: tuple[str, ...] = (),
                 vpc: ec2.IVpc | None = None, security_groups: list[ec2.ISecurityGroup] | None = None,
                 asynchronous: bool = False, reserved_concurrency: int | None = None) -> None:
        super().__init__(scope, id_)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, encryption_key=key,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.dead_letters = encrypted_queue(self, "DeadLetters", key=key, retention_period=Duration.days(14)) \
            if asynchronous else None
        self.function = lambda_.Function(
            self, "Function", runtime=LAMBDA_RUNTIME, handler=f"lambdas.{name}.handler.handler",
            code=function_code(name, whole_package=whole_package, vendored=vendored),
            vpc=vpc, security_groups=security_groups,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED) if vpc else None,
            environment=environment, timeout=Duration.seconds(timeout_s), memory_size=memory_mb,
            log_group=self.log_group, tracing=lambda_.Tracing.ACTIVE, architecture=lambda_.Architecture.ARM_64,
            dead_letter_queue=self.dead_letters, reserved_concurrent_executions=reserved_concurrency)
        # What every such function holds, acknowledged once here rather than beside each function.
        acknowledge(self.function, managed_policy("service-role/AWSLambdaBasicExecutionRole"),
                    "AWS's basic execution policy only lets the function write its own logs.")
        if vpc is not None:
            acknowledge(self.function, managed_policy("service-role/AWSLambdaVPCAccessExecutionRole"),
                        "AWS's policy for the function's network interfaces in the VPC.")
        acknowledge(self.function, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray tracing and VPC network interfaces accept no resource but *." if vpc is not None else
                    "X-Ray tracing: PutTraceSegments and PutTelemetryRecords accept no resource but *.")
        if self.dead_letters is not None:
            # Lambda sends to the dead-letter queue as the function's role; the queue is encrypted,
            # so the role needs the key as well as sqs:SendMessage.
            self.dead_letters.grant_send_messages(self.function)
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                acknowledge(self.function, f"AwsSolutions-IAM5[Action::{action}]",
                            "CDK's grant to send to the function's own encrypted dead-letter queue, on this "
                            "project's key only.")


@jsii.implements(events.IRuleTarget)
class GlueWorkflowTarget:
    """Starts a Glue workflow's EVENT trigger: EventBridge calls glue:notifyEvent on it."""

    def __init__(self, workflow_name: str) -> None:
        self.workflow_name = workflow_name

    def bind(self, rule: events.IRule, id: str | None = None) -> events.RuleTargetConfig:
        stack = Stack.of(rule)
        arn = stack.format_arn(service="glue", resource="workflow", resource_name=self.workflow_name)
        role = iam.Role(rule, "NotifyGlueRole",  # type: ignore[arg-type]
                        assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                        description="Lets EventBridge hand raw-bucket events to the training workflow")
        role.add_to_policy(iam.PolicyStatement(actions=["glue:notifyEvent"], resources=[arn]))
        return events.RuleTargetConfig(arn=arn, role=role)

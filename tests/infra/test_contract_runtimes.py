"""Deploy-contract rules for the job's runtimes (Glue, EMR Serverless, Lambda): same arguments, the
Python the code needs, batching, one start trigger per workflow, failures reported, Aurora reachable."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import Ref, as_list, render, resolve, resources_of, statements, template, the_one
from tests.infra.conftest import Built

pytestmark = pytest.mark.infra
ROOT = Path(__file__).resolve().parents[2]

# Keys Glue itself puts in a job's DefaultArguments (CDK renders them from typed job properties):
# they configure Glue, not the recommender, so EMR has no counterpart.
GLUE_ONLY = re.compile(r"^--(extra-py-files|job-language|enable-.*|TempDir|job-bookmark-option|continuous-log-.*)$")

# https://docs.aws.amazon.com/glue/latest/dg/release-notes.html ("AWS Glue versions"): the Python
# each Glue version runs Spark jobs with.
GLUE_PYTHON = {"5.1": (3, 11), "5.0": (3, 11), "4.0": (3, 10), "3.0": (3, 7)}
# The default Python of a release without a custom image: emr-7.x runs the job with python3 = 3.9
# (https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-7130-release.html lists "Python 3.9, 3.11";
# 3.9 is /usr/bin/python3, the interpreter PySpark uses unless PYSPARK_PYTHON says otherwise).
EMR_RELEASE_PYTHON = {"emr-6": (3, 7), "emr-7": (3, 9)}


def required_python() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec)
    assert match, f"requires-python {spec!r} is not of the form >=X.Y"
    return int(match[1]), int(match[2])


def emr_job_driver(built: Built) -> dict[str, Any]:
    _, machine = the_one(built, "AWS::StepFunctions::StateMachine", "emr")
    definition = machine["Properties"]["DefinitionString"]
    # CDK renders the definition as Fn::Join of literal JSON and tokens: rebuild the JSON with each
    # token rendered (`<AWS::Region>`, `<import ...>`), as `canonical` renders the other templates.
    parts = definition["Fn::Join"][1] if isinstance(definition, dict) else [definition]
    text = "".join(p if isinstance(p, str) else json.dumps(render(p))[1:-1] for p in parts)
    state = next(iter(json.loads(text)["States"].values()))
    return state["Parameters"]["JobDriver"]["SparkSubmit"]


def canonical(value: Any) -> str:
    return render(value)


def trigger_arguments(built: Built, kind: str) -> dict[str, str]:
    """The arguments the Glue trigger of this type ("EVENT": new data, "SCHEDULED") starts the job with."""
    ((_, trigger),) = [(r, t) for r, t in resources_of(built, "AWS::Glue::Trigger") if t["Properties"]["Type"] == kind]
    (action,) = trigger["Properties"]["Actions"]
    return {k: canonical(v) for k, v in action.get("Arguments", {}).items()}


def test_emr_passes_exactly_the_glue_jobs_arguments(prod: Built) -> None:
    """One definition of the job's arguments for both runtimes: what a new-data run gets on Glue,
    the job's DefaultArguments (less Glue's own keys) replaced by its trigger's Arguments, is what
    spark-submit gets on EMR Serverless, whose state machine only new data starts.
    https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-glue-arguments.html"""
    _, job = the_one(prod, "AWS::Glue::Job")
    glue_args = {k: canonical(v) for k, v in job["Properties"]["DefaultArguments"].items() if not GLUE_ONLY.match(k)}
    glue_args.update(trigger_arguments(prod, "EVENT"))
    argv = emr_job_driver(prod)["EntryPointArguments"]
    assert len(argv) % 2 == 0 and all(str(k).startswith("--") for k in argv[::2])
    emr_args = {k: canonical(v) for k, v in zip(argv[::2], argv[1::2])}
    assert emr_args == glue_args
    assert emr_args["--top-n"] == "10"  # the configured jobArguments reach both runtimes
    assert "--shuffle-partitions" in emr_args


def test_new_data_reuses_the_published_tuning_and_the_schedule_tunes(variant: Built) -> None:
    """A run that new data starts passes `--tuning auto` (reuse the published run's parameters while
    the data changed little), the schedule `--tuning full`. A Glue trigger action's Arguments replace
    the job's default arguments for the runs it starts
    (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-trigger.html#aws-glue-api-jobs-trigger-Action);
    on EMR the new-data state machine passes the same option to spark-submit."""
    assert trigger_arguments(variant, "EVENT")["--tuning"] == "auto"
    if variant.settings.job.schedule:
        assert trigger_arguments(variant, "SCHEDULED")["--tuning"] == "full"
    if variant.settings.job.emr:
        argv = emr_job_driver(variant)["EntryPointArguments"]
        assert argv[argv.index("--tuning") + 1] == "auto"


def _ingress_from(built: Built, client_group: Ref, server_group: Ref, port: int) -> bool:
    for ref, rule in resources_of(built, "AWS::EC2::SecurityGroupIngress"):
        props = rule["Properties"]
        if (resolve(built, ref.stack, props.get("GroupId")) == server_group
                and resolve(built, ref.stack, props.get("SourceSecurityGroupId")) == client_group
                and props.get("FromPort", 0) <= port <= props.get("ToPort", 65535)):
            return True
    for ref, group in resources_of(built, "AWS::EC2::SecurityGroup"):
        if ref != server_group:
            continue
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            if (resolve(built, ref.stack, rule.get("SourceSecurityGroupId")) == client_group
                    and rule.get("FromPort", 0) <= port <= rule.get("ToPort", 65535)):
                return True
    return False


def test_emr_workers_reach_aurora(prod: Built) -> None:
    """EMR Serverless workers run in the VPC with the application's security group; the database's
    group must admit it on 3306 like it admits the Glue job's.
    https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/vpc-access.html"""
    app_ref, app = the_one(prod, "AWS::EMRServerless::Application")
    (sg,) = app["Properties"]["NetworkConfiguration"]["SecurityGroupIds"]
    emr_group = resolve(prod, app_ref.stack, sg)
    assert emr_group is not None
    cluster_ref, cluster = the_one(prod, "AWS::RDS::DBCluster")
    (db_sg,) = cluster["Properties"]["VpcSecurityGroupIds"]
    db_group = resolve(prod, cluster_ref.stack, db_sg)
    assert db_group is not None
    assert _ingress_from(prod, emr_group, db_group, 3306)


def test_glue_job_role_may_associate_the_key_with_its_log_groups(variant: Built) -> None:
    """A security configuration with CloudWatch encryption makes Glue call logs:AssociateKmsKey on
    the job's /aws-glue/* log groups as the job role.
    https://docs.aws.amazon.com/glue/latest/dg/encryption-security-configuration.html"""
    job_ref, job = the_one(variant, "AWS::Glue::Job")
    role = resolve(variant, job_ref.stack, job["Properties"]["Role"])
    assert role is not None
    granted = []
    for ref, policy in resources_of(variant, "AWS::IAM::Policy"):
        if role not in [resolve(variant, ref.stack, r) for r in policy["Properties"].get("Roles", [])]:
            continue
        for s in statements(policy["Properties"]["PolicyDocument"]):
            if s["Effect"] == "Allow" and "logs:AssociateKmsKey" in as_list(s["Action"]):
                granted += [render(r) for r in as_list(s["Resource"])]
    assert any(":log-group:/aws-glue/" in r for r in granted), granted


def _python(text: str) -> tuple[int, int]:
    match = re.search(r"python(\d+)\.(\d+)", text)
    assert match, f"no pythonX.Y in {text!r}"
    return int(match[1]), int(match[2])


def test_every_runtime_has_the_python_the_job_needs(variant: Built) -> None:
    """The job's minimum Python (pyproject requires-python) is a fact for every runtime:
    Glue by GlueVersion (https://docs.aws.amazon.com/glue/latest/dg/release-notes.html), EMR Serverless
    by its release or the custom image that sets PYSPARK_PYTHON
    (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/application-custom-image.html),
    each Lambda function by its pythonX.Y runtime
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html)."""
    need = required_python()
    for _, job in resources_of(variant, "AWS::Glue::Job"):
        assert GLUE_PYTHON[job["Properties"]["GlueVersion"]] >= need
    for ref, app in resources_of(variant, "AWS::EMRServerless::Application"):
        image = app["Properties"].get("ImageConfiguration", {}).get("ImageUri")
        if image is None:
            release = app["Properties"]["ReleaseLabel"]
            python = EMR_RELEASE_PYTHON[release.split(".")[0]]
        else:
            from stacks.emr import EMR_IMAGE_DIR

            dockerfile = (EMR_IMAGE_DIR / "Dockerfile").read_text()
            interpreter = re.search(r"PYSPARK_PYTHON=(\S+)", dockerfile)
            assert interpreter, "the image must name its interpreter in PYSPARK_PYTHON"
            python = _python(interpreter[1])
            # The job run must use that interpreter too (driver and executors).
            params = emr_job_driver(variant)["SparkSubmitParameters"]
            for conf in ("spark.emr-serverless.driverEnv.PYSPARK_PYTHON", "spark.executorEnv.PYSPARK_PYTHON"):
                assert f"--conf {conf}={interpreter[1]}" in params
            assert f"FROM public.ecr.aws/emr-serverless/spark/{app['Properties']['ReleaseLabel']}:" in dockerfile
        assert python >= need, f"{ref}: Python {python} < {need}"
    for ref, fn in resources_of(variant, "AWS::Lambda::Function"):
        runtime = fn["Properties"].get("Runtime", "")
        if runtime.startswith("python"):
            assert _python(runtime) >= need, f"{ref}: {runtime}"


def test_emr_can_pull_its_custom_image(prod: Built) -> None:
    """EMR Serverless pulls a custom image with its service principal, which the repository policy
    must allow (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/application-custom-image.html).
    CDK image assets live in the bootstrap repository, whose policy allows emr-serverless.amazonaws.com
    from bootstrap version 27 on (https://github.com/aws/aws-cdk-cli/pull/112): the stack refuses to
    deploy onto an older bootstrap."""
    ref, app = the_one(prod, "AWS::EMRServerless::Application")
    if "ImageConfiguration" not in app["Properties"]:
        pytest.skip("no custom image")
    rules = template(prod, ref.stack).get("Rules", {})
    text = json.dumps(rules)
    assert "BootstrapVersion" in text and '"26"' in text, rules
    assert app["Properties"]["Architecture"] == "X86_64"


def test_emr_new_data_is_batched_and_runs_one_training_at_a_time(prod: Built) -> None:
    """Like the Glue EVENT trigger's batch (size, window), new-data events are batched before a run
    starts: EventBridge rule -> SQS queue -> EventBridge Pipe. A pipe's SQS batching window is at most
    300 s (https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeSourceSqsQueueParameters.html),
    so Glue's window maps onto min(window, 300). The application runs one job at a time and queues
    the rest (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/applications-concurrency-queuing.html)."""
    machine_ref, _ = the_one(prod, "AWS::StepFunctions::StateMachine", "emr")
    for ref, rule in resources_of(prod, "AWS::Events::Rule"):
        for target in rule["Properties"].get("Targets", []):
            assert resolve(prod, ref.stack, target["Arn"]) != machine_ref, "one run per object: not batched"
    pipe_ref, pipe = the_one(prod, "AWS::Pipes::Pipe")
    props = pipe["Properties"]
    assert resolve(prod, pipe_ref.stack, props["Target"]) == machine_ref
    sqs = props["SourceParameters"]["SqsQueueParameters"]
    settings = prod.settings
    assert sqs["BatchSize"] == settings.job.trigger_batch_size
    assert sqs["MaximumBatchingWindowInSeconds"] == min(settings.job.trigger_batch_window_s, 300)
    queue_ref = resolve(prod, pipe_ref.stack, props["Source"])
    assert queue_ref is not None
    queue = queue_ref.resource(prod)["Properties"]
    assert "KmsMasterKeyId" in queue and "RedrivePolicy" in queue
    feeding = [r for ref, r in resources_of(prod, "AWS::Events::Rule")
               if any(resolve(prod, ref.stack, t["Arn"]) == queue_ref for t in r["Properties"].get("Targets", []))]
    (rule,) = feeding
    assert rule["Properties"]["EventPattern"]["detail-type"] == ["Object Created"]
    policies = [p for ref, p in resources_of(prod, "AWS::SQS::QueuePolicy")
                if queue_ref in [resolve(prod, ref.stack, q) for q in p["Properties"]["Queues"]]]
    stmts = [s for p in policies for s in statements(p["Properties"]["PolicyDocument"])]
    assert any(s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
               for s in stmts)
    assert any(s["Effect"] == "Allow" and "events.amazonaws.com" in json.dumps(s.get("Principal")) for s in stmts)
    _, app = the_one(prod, "AWS::EMRServerless::Application")
    assert app["Properties"]["SchedulerConfiguration"]["MaxConcurrentRuns"] == 1


def test_emr_failures_reach_the_failure_notifier(prod: Built) -> None:
    """A failed, timed-out or aborted EMR run ends its Step Functions execution so; EventBridge's
    "Step Functions Execution Status Change" event carries it to the notifier, which publishes to the
    failure topic (https://docs.aws.amazon.com/cdk/api/v2/python/aws_cdk.mixins_preview.aws_states.events/StepFunctionsExecutionStatusChange.html)."""
    machine_ref, _ = the_one(prod, "AWS::StepFunctions::StateMachine", "emr")
    found = []
    for ref, rule in resources_of(prod, "AWS::Events::Rule"):
        pattern = rule["Properties"].get("EventPattern", {})
        if pattern.get("detail-type") != ["Step Functions Execution Status Change"]:
            continue
        assert pattern["source"] == ["aws.states"]
        assert set(pattern["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
        machines = [resolve(prod, ref.stack, a) for a in pattern["detail"]["stateMachineArn"]]
        if machine_ref in machines:
            found += [resolve(prod, ref.stack, t["Arn"]) for t in rule["Properties"]["Targets"]]
    assert found, "no rule reports the EMR state machine's failures"
    for target in found:
        assert target is not None
        fn = target.resource(prod)
        assert fn["Type"] == "AWS::Lambda::Function"
        topic = resolve(prod, target.stack, fn["Properties"]["Environment"]["Variables"]["TOPIC_ARN"])
        assert topic is not None and topic.resource(prod)["Type"] == "AWS::SNS::Topic"


START_TYPES = {"ON_DEMAND", "SCHEDULED", "EVENT"}


def test_every_glue_workflow_has_one_start_trigger(variant: Built) -> None:
    """Each workflow has exactly one start trigger (schedule, on demand, or EventBridge event).
    https://docs.aws.amazon.com/glue/latest/dg/workflows_overview.html"""
    workflows = [ref for ref, _ in resources_of(variant, "AWS::Glue::Workflow")]
    assert workflows
    for workflow in workflows:
        starts = [t for ref, t in resources_of(variant, "AWS::Glue::Trigger")
                  if resolve(variant, ref.stack, t["Properties"].get("WorkflowName")) == workflow
                  and (t["Properties"]["Type"] in START_TYPES or "Predicate" not in t["Properties"])]
        assert len(starts) == 1, f"{workflow}: {len(starts)} start triggers"


def test_the_schedule_still_starts_the_job(prod: Built) -> None:
    """The schedule keeps its own path: a SCHEDULED trigger that starts the job directly.
    https://docs.aws.amazon.com/glue/latest/dg/workflows_overview.html"""
    assert prod.settings.job.schedule
    job_ref, job = the_one(prod, "AWS::Glue::Job")
    scheduled = [(ref, t["Properties"]) for ref, t in resources_of(prod, "AWS::Glue::Trigger")
                 if t["Properties"]["Type"] == "SCHEDULED"]
    (ref, props), = scheduled
    assert props["Schedule"] == prod.settings.job.schedule and props["StartOnCreation"] is True
    names = [a["JobName"] for a in props["Actions"]]
    assert any(resolve(prod, ref.stack, n) == job_ref or n == job["Properties"].get("Name") for n in names)

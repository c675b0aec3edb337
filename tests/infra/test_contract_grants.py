"""Deploy contract: every AWS API call the code makes is granted to the IAM role that runs it.

The calls come from the code (tests/infra/aws_calls.py reads glue_jobs/ and lambdas/ with
`ast`), the roles and their policies from the synthesised templates, so a new boto3 call
without a grant fails here, not at run time with AccessDenied.

AWS pages the rules encode:
- Operation -> IAM action: Service Authorization Reference, "API operations defined by ..."
  https://docs.amazonaws.cn/service-authorization/latest/reference/list_s3.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/list_amazons3.html,
  https://docs.amazonaws.cn/service-authorization/latest/reference/list_dynamodb.html
  (every other service used here names its action after its operation).
- Wildcards in Action (`s3:GetObject*`) and case-insensitive matching:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
- AWS managed policies, by what they grant:
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html,
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html,
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSGlueServiceRole.html
- A read of a missing S3 key answers 404 only with s3:ListBucket on the bucket, 403 otherwise:
  https://docs.amazonaws.cn/goto/WebAPI/s3-2006-03-01/GetObject (Permissions), and
  https://repost.aws/zh-Hans/articles/ARotCurEfWTCm7CzGu4vs9lw
- Reading or writing data a customer managed key encrypts needs that key's actions too: S3
  objects under SSE-KMS, kms:GenerateDataKey to write and kms:Decrypt to read (and for
  multipart uploads),
  https://docs.amazonaws.cn/en%5Fus/AmazonS3/latest/userguide/s3-express-UsingKMSEncryption.md;
  publishers to an encrypted topic, kms:GenerateDataKey* and kms:Decrypt,
  https://rules.sonarsource.com/python/RSPEC-6327 (quoting SNS's key-management page).
  The key policies here delegate to IAM (the account principal), so the role's own policies
  must hold these.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.infra.aws_calls import ApiCall, Program, iam_actions
from tests.infra.cfn import Ref, action_matches, as_list, render, resolve, resources_of, statements
from tests.infra.conftest import Built

pytestmark = pytest.mark.infra

JOB_SCRIPT = "glue_jobs.glue_entry"  # what the Glue job's (and EMR's) script asset is made from

# What AWS managed policies grant, action by action (resources are "*" unless listed).
MANAGED: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "AWSLambdaBasicExecutionRole": [(("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"), ("*",))],
    "AWSLambdaVPCAccessExecutionRole": [(
        ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ec2:CreateNetworkInterface",
         "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
         "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"), ("*",))],
    "AWSGlueServiceRole": [
        (("glue:*", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListAllMyBuckets", "s3:GetBucketAcl",
          "ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables", "ec2:CreateNetworkInterface",
          "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups",
          "ec2:DescribeSubnets", "ec2:DescribeVpcAttribute", "iam:ListRolePolicies", "iam:GetRole",
          "iam:GetRolePolicy", "cloudwatch:PutMetricData"), ("*",)),
        (("s3:CreateBucket",), ("arn:aws:s3:::aws-glue-*",)),
        (("s3:GetObject", "s3:PutObject", "s3:DeleteObject"), ("arn:aws:s3:::aws-glue-*/*",
                                                               "arn:aws:s3:::*/*aws-glue-*/*")),
        (("s3:GetObject",), ("arn:aws:s3:::crawler-public*", "arn:aws:s3:::aws-glue-*")),
        (("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"),
         ("arn:aws:logs:*:*:/aws-glue/*",)),
    ],
}

# S3 actions on objects (resource ARN bucket/key) and on buckets (ARN without a key): a grant
# on the wrong resource type grants nothing (list_amazons3, "Resource types" column).
S3_OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                     "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:ListMultipartUploadParts"}
S3_BUCKET_ACTIONS = {"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"}

# KMS actions an operation needs when the service's data is under a customer managed key.
KMS_FOR: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "GetObject"): ("kms:Decrypt",),
    ("s3", "PutObject"): ("kms:GenerateDataKey",),
    ("s3", "CreateMultipartUpload"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "UploadPart"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "UploadPartCopy"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "CompleteMultipartUpload"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("sns", "Publish"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("secretsmanager", "GetSecretValue"): ("kms:Decrypt",),
}


def _publish_settings_without_aurora(program: Program) -> bool:
    """Every SinkOptions(...) the rollback handler builds (PublishSettings.from_options' input)
    names its options by keyword and leaves the aurora ones unset."""
    tree = program.modules["lambdas.rollback.handler"].tree
    built = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id in ("PublishSettings", "SinkOptions")]
    return bool(built) and all(not n.args and all(k.arg and not k.arg.startswith("aurora") for k in n.keywords)
                               for n in built)


# Calls the analysis reaches only through a branch an entry point never takes (the analysis
# does not follow values into `if` conditions). Each names the fact that keeps the branch
# closed and a check of that fact against the code: when the fact stops holding, the grant
# is required again.
UNREACHABLE: dict[tuple[str, str], tuple[str, Callable[[Program], bool]]] = {
    ("lambdas.rollback.handler", "secretsmanager:GetSecretValue"): (
        "rollback's PublishSettings has no aurora settings (the Aurora reload is the CLI's, inside the VPC), so "
        "publish.aurora.url_from_secret never runs in the function", _publish_settings_without_aurora),
}


@dataclass(frozen=True)
class Need:
    action: str
    why: str  # the code that needs it


@dataclass(frozen=True)
class Entry:
    """Code a role runs: a function's handler, or the training script."""

    name: str  # for messages
    module: str  # entry module
    roots: tuple[str, ...]
    role: Ref


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]  # rendered
    source: str  # where the statement comes from

    def allows(self, action: str) -> bool:
        if self.not_actions:
            return not action_matches(action, self.not_actions)
        return action_matches(action, self.actions)

    def right_resource_type(self, action: str) -> bool:
        if action not in S3_OBJECT_ACTIONS | S3_BUCKET_ACTIONS:
            return True
        for resource in self.resources:
            if resource == "*":
                return True
            path = resource.split(":s3:::", 1)[1] if ":s3:::" in resource else resource
            if ("/" in path) == (action in S3_OBJECT_ACTIONS):
                return True
        return False


# ---- requirements from the code -----------------------------------------------------------

@pytest.fixture(scope="module")
def program() -> Program:
    return Program.from_project()


def kms_encrypted_services(built: Built) -> set[str]:
    """Services whose data in this app a customer managed key encrypts."""
    out: set[str] = set()
    for _, bucket in resources_of(built, "AWS::S3::Bucket"):
        rules = bucket["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        if any(r.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID") for r in rules):
            out.add("s3")
    if any(t["Properties"].get("KmsMasterKeyId") for _, t in resources_of(built, "AWS::SNS::Topic")):
        out.add("sns")
    if any(s["Properties"].get("KmsKeyId") for _, s in resources_of(built, "AWS::SecretsManager::Secret")):
        out.add("secretsmanager")
    return out


def needs(program: Program, entry_module: str, calls: set[ApiCall], encrypted: frozenset[str] = frozenset()) \
        -> list[Need]:
    out: list[Need] = []
    for call in sorted(calls, key=lambda c: (c.path, c.line, c.operation)):
        for action in iam_actions(call.service, call.operation):
            out.append(Need(action, f"{call.service}.{call.operation} at {call.where()}"))
        if call.service in encrypted:
            for action in KMS_FOR.get((call.service, call.operation), ()):
                out.append(Need(action, f"{call.service}.{call.operation} at {call.where()}, on data under the "
                                        "customer managed key"))
        if call.service == "s3" and call.operation in ("GetObject", "HeadObject") and program.catches_missing_key(call):
            out.append(Need("s3:ListBucket", f"{call.where()} tells a missing key (NoSuchKey/404) apart, which S3 "
                                             "reports only to a caller with s3:ListBucket (403 otherwise)"))
    unreachable = {a for (m, a), (_, holds) in UNREACHABLE.items() if m == entry_module and holds(program)}
    return [n for n in out if n.action not in unreachable]


# ---- roles and entry points from the templates --------------------------------------------

def _role_ref(built: Built, stack: str, value: Any) -> Ref:
    ref = resolve(built, stack, value)
    assert ref is not None and ref.resource(built)["Type"] == "AWS::IAM::Role", f"{stack}: role {value} not found"
    return ref


def _join_parts(value: Any) -> list[Any]:
    if isinstance(value, dict) and "Fn::Join" in value:
        return list(value["Fn::Join"][1])
    return [value]


def _asset_key(value: Any) -> str:
    """The object key of a CDK asset URL (the script's content hash)."""
    match = re.search(r"([0-9a-f]{64}\.\w+)", json.dumps(value))
    assert match, f"not an asset location: {value}"
    return match.group(1)


def entries(built: Built, program: Program) -> Iterator[Entry]:
    scripts: dict[str, str] = {}
    for ref, job in resources_of(built, "AWS::Glue::Job"):
        props = job["Properties"]
        scripts[_asset_key(props["Command"]["ScriptLocation"])] = JOB_SCRIPT
        yield Entry(f"Glue job {ref.logical_id} ({ref.stack})", JOB_SCRIPT, tuple(program.script_roots(JOB_SCRIPT)),
                    _role_ref(built, ref.stack, props["Role"]))
    for ref, machine in resources_of(built, "AWS::StepFunctions::StateMachine"):
        parts = _join_parts(machine["Properties"].get("DefinitionString"))
        for i, part in enumerate(parts[:-1]):
            if isinstance(part, str) and part.endswith('"ExecutionRoleArn":"'):
                entry_points = [parts[j + 1] for j in range(i, len(parts) - 1)
                                if isinstance(parts[j], str) and parts[j].endswith('"EntryPoint":"')]
                assert entry_points, f"{ref}: an EMR job run without an EntryPoint"
                key = _asset_key(entry_points[0])
                # The EMR run must start the very script the Glue job runs, or its code is unknown here.
                assert key in scripts, f"{ref}: EMR entry point {key} is not the Glue job's script"
                yield Entry(f"EMR job run of {ref.logical_id} ({ref.stack})", scripts[key],
                            tuple(program.script_roots(scripts[key])), _role_ref(built, ref.stack, parts[i + 1]))
    for ref, fn in resources_of(built, "AWS::Lambda::Function"):
        handler = fn["Properties"].get("Handler", "")
        module = handler.rpartition(".")[0]
        if module not in program.modules:
            continue  # CDK's own providers (index.handler): not this project's code
        yield Entry(f"function {ref.logical_id} ({ref.stack}, {handler})", module,
                    tuple(program.lambda_roots(handler)), _role_ref(built, ref.stack, fn["Properties"]["Role"]))


def grants(built: Built, role: Ref) -> list[Grant]:
    """Allow statements of a role: its inline policies, AWS::IAM::Policy / ManagedPolicy
    resources attached to it in any stack, and the managed policies it names."""
    out: list[Grant] = []

    def add(document: dict[str, Any], source: str) -> None:
        for st in statements(document):
            if st.get("Effect") != "Allow":
                continue
            out.append(Grant(tuple(as_list(st.get("Action", []))), tuple(as_list(st.get("NotAction", []))),
                             tuple(render(r) for r in as_list(st.get("Resource", []))), source))

    props = role.resource(built)["Properties"]
    for policy in props.get("Policies", []):
        add(policy["PolicyDocument"], f"{role.logical_id} inline {policy.get('PolicyName')}")
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for ref, policy in resources_of(built, kind):
            if any(resolve(built, ref.stack, r) == role for r in policy["Properties"].get("Roles", [])):
                add(policy["Properties"]["PolicyDocument"], f"{ref.stack}/{ref.logical_id}")
    for arn in props.get("ManagedPolicyArns", []):
        ours = resolve(built, role.stack, arn)
        if ours is not None:
            add(ours.resource(built)["Properties"]["PolicyDocument"], f"{ours.stack}/{ours.logical_id}")
            continue
        name = render(arn).rsplit("/", 1)[-1]
        assert name in MANAGED, f"{role}: managed policy {name} unknown here: add what it grants to MANAGED"
        for actions, resources in MANAGED[name]:
            out.append(Grant(actions, (), resources, f"AWS managed {name}"))
    return out


def missing(grants_: list[Grant], needed: list[Need]) -> list[str]:
    """Each needed action no Allow statement grants (on a resource of the right type)."""
    out = []
    for need in needed:
        allowing = [g for g in grants_ if g.allows(need.action)]
        if not allowing:
            out.append(f"{need.action}: not granted ({need.why})")
        elif not any(g.right_resource_type(need.action) for g in allowing):
            out.append(f"{need.action}: granted only on resources of another type "
                       f"({', '.join(r for g in allowing for r in g.resources)}) ({need.why})")
    return sorted(set(out))


def unused(grants_: list[Grant], needed: list[Need]) -> list[str]:
    """Actions the role's own statements name that no code path of its entry needs (a report)."""
    wanted = {n.action.lower() for n in needed}
    return sorted({f"{a} ({g.source})" for g in grants_ if not g.source.startswith("AWS managed")
                   for a in g.actions if not any(fnmatchcase(w, a.lower()) for w in wanted)})


# ---- the contract ---------------------------------------------------------------------------

def test_the_code_has_no_aws_call_whose_operation_cannot_be_read(program: Program) -> None:
    """A client whose service is a variable (or an operation chosen at run time) would escape
    every check below: each must name its service and operation literally."""
    assert sorted(map(str, program.problems)) == []


def test_every_aws_call_is_granted_to_the_role_that_runs_it(variant: Built, program: Program) -> None:
    found = list(entries(variant, program))
    kinds = {e.name.split(" ")[0] for e in found}
    assert {"Glue", "function"} <= kinds, f"entry points not found in the templates: {kinds}"
    encrypted = frozenset(kms_encrypted_services(variant))
    failures = []
    for entry in found:
        needed = needs(program, entry.module, program.entry_calls(entry.roots), encrypted)
        gaps = missing(grants(variant, entry.role), needed)
        failures += [f"{entry.name}, role {entry.role.stack}/{entry.role.logical_id}: {gap}" for gap in gaps]
    assert failures == [], "\n".join(failures)


def test_each_unreachable_exemption_still_holds(program: Program) -> None:
    """An exemption whose fact no longer holds is a grant that is required again; one for code
    that no longer makes the call is stale."""
    for (module, action), (reason, holds) in UNREACHABLE.items():
        assert module in program.modules, f"exemption for a module that is gone: {module}"
        calls = program.entry_calls([f"{module}:<module>", *[k for k in program.funcs if k.startswith(module + ":")]])
        actions = {a for c in calls for a in iam_actions(c.service, c.operation)}
        assert action in actions, f"stale exemption: {module} no longer reaches {action}"
        assert holds(program), f"{module}: {action} is reachable again ({reason} no longer holds)"


# ---- the check can fail ---------------------------------------------------------------------

SNIPPET = {
    "app.clients": ("app/clients.py", '''
import boto3

class Settings:
    def __init__(self, region):
        self.region = region

    def queue(self):
        return boto3.client("sqs", region_name=self.region)
'''),
    "app.work": ("app/work.py", '''
from app.clients import Settings

def send(client, body):
    client.send_message(QueueUrl="q", MessageBody=body)

def unused(client):
    client.delete_queue(QueueUrl="q")
'''),
    "app.handler": ("app/handler.py", '''
import boto3
from app import work
from app.clients import Settings

def handler(event, context):
    s3 = event.get("client") or boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="b"):
        pass
    work.send(Settings("eu-west-1").queue(), "hello")

def dynamic(name):
    return boto3.client(name).list_things()
'''),
}


def test_the_analysis_reports_a_call_the_role_lacks() -> None:
    """Calls reached through a client factory method, a parameter and a paginator, checked
    against a role that grants only some of them; unreachable code adds nothing."""
    program = Program(SNIPPET)
    calls = program.entry_calls(program.lambda_roots("app.handler.handler"))
    assert {(c.service, c.operation) for c in calls} == {("s3", "ListObjectsV2"), ("sqs", "SendMessage")}
    role = [Grant(("s3:ListBucket",), (), ("arn:aws:s3:::b",), "test"),
            Grant(("sqs:Send*",), (), ("*",), "test")]
    assert missing(role, needs(program, "app.handler", calls)) == []
    gaps = missing(role[:1], needs(program, "app.handler", calls))
    assert len(gaps) == 1 and gaps[0].startswith("sqs:SendMessage: not granted (sqs.SendMessage at app/work.py:5")
    # s3:ListBucket granted on objects only is no grant of it
    assert missing([Grant(("s3:*",), (), ("arn:aws:s3:::b/*",), "t"), role[1]], needs(program, "app.handler", calls))
    # a client whose service is a variable is reported with its file and line
    assert [str(p) for p in program.problems] == [
        "app/handler.py:13: AWS client service name is not a literal: name the service so its grants can be checked"]


def test_a_missing_key_read_needs_list_bucket() -> None:
    program = Program({"m": ("m.py", '''
import boto3
from botocore.exceptions import ClientError

def read(key):
    try:
        return boto3.client("s3").get_object(Bucket="b", Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchKey":
            return None
        raise
''')})
    calls = program.entry_calls(["m:read"])
    gaps = missing([Grant(("s3:GetObject",), (), ("arn:aws:s3:::b/*",), "t")], needs(program, "m", calls))
    assert len(gaps) == 1 and gaps[0].startswith("s3:ListBucket: not granted")
    # under a customer managed key the read also needs kms:Decrypt
    gaps = missing([Grant(("s3:GetObject",), (), ("arn:aws:s3:::b/*",), "t"),
                    Grant(("s3:ListBucket",), (), ("arn:aws:s3:::b",), "t")],
                   needs(program, "m", calls, frozenset({"s3"})))
    assert len(gaps) == 1 and gaps[0].startswith("kms:Decrypt: not granted")


def test_a_method_called_by_name_runs_only_where_its_class_is_imported() -> None:
    """`x.check()` on an object of unknown class may run any `check` method, but only of a class
    whose module the entry point imports (not just for the type checker): no instance exists
    anywhere else."""
    program = Program({
        "sinks": ("sinks.py", '''
import boto3

class Table:
    def check(self):
        boto3.client("dynamodb").describe_table(TableName="t")
'''),
        "api": ("api.py", '''
def handler(event, context):
    event["option"].check()
'''),
        "job": ("job.py", '''
import sinks

def main(thing):
    thing.check()
'''),
        "typed": ("typed.py", '''
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sinks

def main(thing):
    thing.check()
'''),
    })
    assert program.entry_calls(program.lambda_roots("api.handler")) == set()
    assert program.entry_calls(program.lambda_roots("typed.main")) == set()  # never imported at run time
    assert {(c.service, c.operation) for c in program.entry_calls(program.lambda_roots("job.main"))} == {
        ("dynamodb", "DescribeTable")}


def report(built: Built) -> dict[str, list[str]]:
    """Grants no code path uses, per role (printed for review; a job role also needs S3 for
    Spark's own reads and writes, which are not boto3 calls)."""
    program = Program.from_project()
    out: dict[str, list[str]] = {}
    for entry in entries(built, program):
        needed = needs(program, entry.module, program.entry_calls(entry.roots),
                       frozenset(kms_encrypted_services(built)))
        out[f"{entry.name} role {entry.role.logical_id}"] = unused(grants(built, entry.role), needed)
    return out


"""The stack outputs `make smoke` finds a deployment by exist, in every template variant, and name
the resources it expects.

`tools/smoke.py` reads them with DescribeStacks, which returns each template's Outputs section
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/outputs-section-structure.html:
"you can output the S3 bucket name for a stack to make the bucket easier to find ... by using the
describe-stacks CLI command"); a missing output makes the smoke test fail on a healthy deployment.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from stacks import names
from tests.infra.cfn import Ref, render, resolve, template
from tests.infra.conftest import Built

spec = importlib.util.spec_from_file_location("smoke", Path(__file__).resolve().parents[2] / "tools" / "smoke.py")
assert spec and spec.loader
smoke = importlib.util.module_from_spec(spec)
sys.modules.setdefault(spec.name, smoke)
spec.loader.exec_module(smoke)

# stack part -> output key -> the resource type(s) it may name
EXPECTED: dict[str, dict[str, str | tuple[str, ...]]] = {
    "storage": {names.OUTPUT_RAW_BUCKET: "AWS::S3::Bucket", names.OUTPUT_CURATED_BUCKET: "AWS::S3::Bucket"},
    "serving": {names.OUTPUT_TABLE: "AWS::DynamoDB::Table", names.OUTPUT_API_URL: "AWS::ApiGatewayV2::Api"},
    "training": {names.OUTPUT_WORKFLOW: "AWS::Glue::Workflow"},
    "analytics": {names.OUTPUT_CLUSTER_ARN: "AWS::RDS::DBCluster",
                  # the cluster's secret is read through its attachment, whose Ref is the secret's ARN
                  names.OUTPUT_SECRET_ARN: ("AWS::SecretsManager::Secret",
                                            "AWS::SecretsManager::SecretTargetAttachment")},
    "emr": {names.OUTPUT_STATE_MACHINE: "AWS::StepFunctions::StateMachine"},
}


def named_resource(built: Built, stack: str, value: object) -> Ref | None:
    """The resource an output names: by Ref/GetAtt, or inside an ARN or URL built with Fn::Join."""
    found = resolve(built, stack, value)
    if found or not isinstance(value, dict) or "Fn::Join" not in value:
        return found
    for part in value["Fn::Join"][1]:
        found = resolve(built, stack, part)
        if found:
            return found
    return None


def test_the_stacks_smoke_looks_for_are_named_as_it_expects(variant: Built) -> None:
    prefix = variant.settings.prefix
    for part, stack in variant.stacks.items():
        if part in smoke.STACK_PARTS:
            assert stack.stack_name == f"{prefix}-{part}"
    assert {"storage", "serving", "training", "analytics"} <= set(variant.stacks)


def test_every_output_smoke_reads_names_the_right_resource(variant: Built) -> None:
    prefix = variant.settings.prefix
    for part, outputs in EXPECTED.items():
        if part not in variant.stacks:
            assert part == "emr" and not variant.settings.job.emr
            continue
        declared = template(variant, part).get("Outputs", {})
        for key, kind in outputs.items():
            assert key in declared, f"{prefix}-{part} has no output {key}"
            ref = named_resource(variant, part, declared[key]["Value"])
            kinds = kind if isinstance(kind, tuple) else (kind,)
            assert ref is not None and ref.resource(variant)["Type"] in kinds, (part, key, declared[key])
    # The bucket outputs and the name smoke derives when they are missing are the same rule.
    storage = template(variant, "storage")
    for key, purpose in ((names.OUTPUT_RAW_BUCKET, "raw"), (names.OUTPUT_CURATED_BUCKET, "curated")):
        bucket = named_resource(variant, "storage", storage["Outputs"][key]["Value"])
        assert bucket is not None
        assert render(bucket.resource(variant)["Properties"]["BucketName"]) == \
            names.bucket_name(prefix, purpose, "<AWS::AccountId>", "<AWS::Region>")
    # Aurora's database: the Data API call names it.
    analytics = template(variant, "analytics")
    cluster = named_resource(variant, "analytics", analytics["Outputs"][names.OUTPUT_CLUSTER_ARN]["Value"])
    assert cluster is not None
    assert analytics["Outputs"][names.OUTPUT_DATABASE]["Value"] == \
        cluster.resource(variant)["Properties"]["DatabaseName"]

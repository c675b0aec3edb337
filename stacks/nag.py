"""cdk-nag acknowledgements, each with the specific reason it is acceptable here."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

from stacks import names


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def managed_policy(name: str) -> str:
    """The finding for an AWS managed policy on a role, e.g. managed_policy("service-role/AWSGlueServiceRole")."""
    return f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]"


def bucket_objects(prefix: str, purpose: str, path: str = "*") -> str:
    """The finding for a wildcard over objects of one of the project's buckets, named as cdk-nag renders it."""
    bucket = names.bucket_name(prefix, purpose, "<AWS::AccountId>", "<AWS::Region>")
    return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{path}]"

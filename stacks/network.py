"""Networking: a VPC with isolated subnets and the endpoints the job and Lambdas need, or an
existing VPC imported by id (no lookup call, so synth stays offline)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge

INTERFACE_ENDPOINTS = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Glue": ec2.InterfaceVpcEndpointAwsService.GLUE,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
}


@dataclass(frozen=True)
class ExistingVpc:
    """An existing VPC given by configuration; each stack that needs it imports it (no lookup)."""

    vpc_id: str
    azs: tuple[str, ...]
    subnet_ids: tuple[str, ...]


def admit_to_database(scope: Construct, id_: str, *, database: ec2.ISecurityGroup, client: ec2.ISecurityGroup,
                      description: str) -> None:
    """An ingress rule on the database's group for one client, declared in the client's stack: the
    rule belongs to whoever needs access, and the analytics stack must not depend on its clients."""
    ec2.CfnSecurityGroupIngress(scope, id_, group_id=database.security_group_id,
                                source_security_group_id=client.security_group_id, ip_protocol="tcp",
                                from_port=3306, to_port=3306, description=description)


def resolve_vpc(scope: Construct, vpc: ec2.IVpc | ExistingVpc) -> ec2.IVpc:
    if isinstance(vpc, ExistingVpc):
        return ec2.Vpc.from_vpc_attributes(scope, "ExistingVpc", vpc_id=vpc.vpc_id, availability_zones=list(vpc.azs),
                                           isolated_subnet_ids=list(vpc.subnet_ids))
    return vpc


class NetworkStack(Stack):
    """Only created when no existing VPC is configured."""

    def __init__(self, scope: Construct, id_: str, *, key: kms.IKey, log_retention: logs.RetentionDays,
                 **kwargs: object) -> None:
        super().__init__(scope, id_, **kwargs)  # type: ignore[arg-type]
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=0,
                      subnet_configuration=[ec2.SubnetConfiguration(
                          name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)])
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        # Gateway endpoints are free; interface endpoints replace a NAT gateway for AWS APIs.
        vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        vpc.add_gateway_endpoint("DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
        for name, service in INTERFACE_ENDPOINTS.items():
            endpoint = vpc.add_interface_endpoint(name, service=service, private_dns_enabled=True)
            acknowledge(endpoint, "AwsSolutions-EC23",
                        "Ingress is HTTPS from this VPC's own CIDR only; nag cannot resolve the CIDR token.")
        self.vpc: ec2.IVpc = vpc

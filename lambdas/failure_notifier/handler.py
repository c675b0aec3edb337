"""Turns a failed training run (EventBridge "Glue Job State Change", or "Step Functions Execution
Status Change" of the EMR runtime) into a message a person can act on: what failed, the error,
when, how long it ran, and a link to the run."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger

logger = Logger(service="failure-notifier")


def describe(detail: dict[str, Any], run: dict[str, Any] | None, region: str) -> tuple[str, str]:
    job, run_id, state = detail.get("jobName", "?"), detail.get("jobRunId", "?"), detail.get("state", "?")
    error = (run or {}).get("ErrorMessage") or detail.get("message") or "no error message was recorded"
    lines = [f"The recommender training run {state}.", "", f"Job:    {job}", f"Run:    {run_id}", f"State:  {state}",
             f"Error:  {error}"]
    if run:
        if run.get("StartedOn"):
            lines.append(f"Started: {run['StartedOn']}")
        if run.get("ExecutionTime") is not None:
            lines.append(f"Ran for: {int(run['ExecutionTime']) // 60} min {int(run['ExecutionTime']) % 60} s")
        if run.get("Attempt"):
            lines.append(f"Attempt: {run['Attempt']}")
    lines += ["", "The previously published recommendations are still being served.",
              f"Run details: https://{region}.console.aws.amazon.com/gluestudio/home?region={region}"
              f"#/job/{job}/run/{run_id}"]
    subject = f"Recommender training {state}: {job}"[:100]
    return subject, "\n".join(lines)


def describe_execution(detail: dict[str, Any], region: str) -> tuple[str, str]:
    """An EMR Serverless run, from its Step Functions execution: the event holds everything."""
    machine = str(detail.get("stateMachineArn", "?")).rsplit(":", 1)[-1]
    execution, status = detail.get("executionArn", "?"), detail.get("status", "?")
    error = ": ".join(str(x) for x in (detail.get("error"), detail.get("cause")) if x) or "no error was recorded"
    lines = [f"The recommender training run (EMR Serverless) {status}.", "", f"State machine: {machine}",
             f"Execution: {execution}", f"State:  {status}", f"Error:  {error}"]
    start, stop = detail.get("startDate"), detail.get("stopDate")
    if isinstance(start, int | float) and isinstance(stop, int | float):  # epoch milliseconds
        seconds = int(stop - start) // 1000
        lines.append(f"Ran for: {seconds // 60} min {seconds % 60} s")
    lines += ["", "The previously published recommendations are still being served.",
              f"Run details: https://{region}.console.aws.amazon.com/states/home?region={region}"
              f"#/v2/executions/details/{execution}"]
    return f"Recommender training {status}: {machine}"[:100], "\n".join(lines)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any, glue: Any = None, sns: Any = None) -> dict[str, Any]:
    region = os.environ.get("AWS_REGION", "us-east-1")
    detail = event.get("detail", {})
    if event.get("source") == "aws.states":
        subject, message = describe_execution(detail, region)
    else:
        run = None
        try:
            run = (glue or boto3.client("glue")).get_job_run(
                JobName=detail["jobName"], RunId=detail["jobRunId"], PredecessorsIncluded=False)["JobRun"]
        except Exception:  # the notification matters more than its details
            logger.exception("could not read the job run; notifying with the event's details only")
        subject, message = describe(detail, run, region)
    (sns or boto3.client("sns")).publish(TopicArn=os.environ["TOPIC_ARN"], Subject=subject, Message=message)
    return {"subject": subject}

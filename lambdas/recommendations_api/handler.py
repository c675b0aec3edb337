"""Recommendations API (HTTP API v2): a thin Powertools handler over logic.RecommendationStore.

GET /users/{user_id}/recommendations?k=N, GET /artists/{artist_id}/similar?k=N, GET /runs/active,
GET /health.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.recommendations_api.logic import (
    BadRequest,
    NotFound,
    RecommendationStore,
    Unavailable,
    parse_artist_id,
    parse_user_id,
)

logger = Logger(service="recommendations-api")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MusicRecommender"),
                  service="recommendations-api")
tracer = Tracer(service="recommendations-api")
app = APIGatewayHttpResolver()
_store: RecommendationStore | None = None


def store() -> RecommendationStore:
    """One store per container: the pointer cache survives between invocations."""
    global _store
    if _store is None:
        _store = RecommendationStore(boto3.client("dynamodb"), os.environ["TABLE_NAME"],
                                     float(os.environ.get("POINTER_TTL_SECONDS", "30")))
    return _store


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.get("/health")
def health() -> Response:
    return _json(200, {"status": "ok"})


@app.get("/runs/active")
@tracer.capture_method
def active_run() -> Response:
    return _json(200, store().active_run())


@app.get("/users/<user_id>/recommendations")
@tracer.capture_method
def recommendations(user_id: str) -> Response:
    body = store().recommendations(parse_user_id(user_id), app.current_event.query_string_parameters)
    metrics.add_metric(name="FallbackServed" if body["fallback"] else "ModelServed", unit=MetricUnit.Count, value=1)
    return _json(200, body)


@app.get("/artists/<artist_id>/similar")
@tracer.capture_method
def similar_artists(artist_id: str) -> Response:
    return _json(200, store().similar_artists(parse_artist_id(artist_id), app.current_event.query_string_parameters))


@app.exception_handler(BadRequest)
def bad_request(exc: BadRequest) -> Response:
    return _json(400, {"message": str(exc)})


@app.exception_handler(NotFound)
def not_published(exc: NotFound) -> Response:
    return _json(404, {"message": str(exc)})


@app.exception_handler(Unavailable)
def unavailable(exc: Unavailable) -> Response:
    logger.warning("store unavailable", extra={"reason": str(exc)})
    metrics.add_metric(name="StoreUnavailable", unit=MetricUnit.Count, value=1)
    return _json(503, {"message": "recommendations are temporarily unavailable"})


@app.not_found
def not_found(exc: Exception) -> Response:
    return _json(404, {"message": "no such route"})


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error")  # the trace goes to the logs, never to the caller
    return _json(500, {"message": "internal error"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)

"""s3_ingest: S3 uploads under inputs/<model>/ (via SQS, or EventBridge) → predictions in outputs/."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sinfer.jobs.delivery import handle_event
from sinfer.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return handle_event(event, context)

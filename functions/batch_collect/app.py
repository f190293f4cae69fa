"""batch_collect: batch job state changes (EventBridge) and the sweeper → collect, retry, merge."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sinfer.batch.handlers import handle_collect
from sinfer.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_collect(event)

"""Logger, Tracer and Metrics, created once per process and imported everywhere.

Powertools objects read their settings (service name, namespace, log level) from the
environment that template.yaml's Globals set, so nothing here is configuration.
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "sinfer")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "sinfer"), service=SERVICE)

__all__ = ["logger", "metrics", "tracer"]

# Routes such as health checks publish no metric; Powertools warns on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

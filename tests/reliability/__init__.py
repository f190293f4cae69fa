"""Reliability: adversarial inputs and injected faults against the API and the S3 path."""

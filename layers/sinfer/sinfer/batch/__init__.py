"""Batch backends: where jobs too large for a Lambda go (Bedrock batch, SageMaker Batch Transform, local)."""

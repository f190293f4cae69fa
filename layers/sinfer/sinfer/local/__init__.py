"""Local tooling: API Gateway event shapes, the embedded stack, local invocation."""

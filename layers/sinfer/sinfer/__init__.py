"""sinfer: serverless ONNX inference on AWS Lambda, batch backends, and the same core offline."""

__version__ = "0.1.0"

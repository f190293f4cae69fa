"""predict_api: the HTTP surface (routes, error mapping, the resolver for both API Gateway flavours)."""

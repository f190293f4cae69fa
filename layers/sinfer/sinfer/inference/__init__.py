"""The inference pipeline: loaded models and the registry that caches them."""

"""Turning bytes and JSON into arrays and back: dtypes, images, instances, outputs."""

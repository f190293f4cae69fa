"""Thin typed facades over boto3: one place creates clients, one place maps AWS errors."""

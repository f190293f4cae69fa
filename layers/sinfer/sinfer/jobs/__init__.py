"""Jobs: asynchronous S3 ingestion, the jobs table, routing to batch, notifications."""

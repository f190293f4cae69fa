"""Wire protocols: Open Inference Protocol v2 and KServe v1 / TF-Serving style predict."""

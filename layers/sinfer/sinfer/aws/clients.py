"""Cached boto3 clients.

Clients are created lazily, once per process and service, never at import time: a handler's
cold start should pay only for the clients it uses. ``AWS_ENDPOINT_URL`` (which boto3 reads
itself) points every client at the embedded local stack. Tests inject their own clients by
calling :func:`set_client` or clear the cache with :func:`reset_clients` between moto
sessions.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """Return the process-wide client for ``service``, creating it on first use."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(service)
        if found is None:
            import boto3  # deferred: boto3's import is a sizeable part of a cold start
            from botocore.config import Config

            config = Config(
                retries={"mode": "adaptive", "max_attempts": 8}, tcp_keepalive=True, max_pool_connections=32
            )
            if service == "s3":  # presigned URLs must be SigV4 (required for KMS-encrypted objects)
                config = config.merge(Config(signature_version="s3v4"))
            found = boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]
            _clients[service] = found
        return found


def set_client(service: str, value: Any) -> None:
    """Inject a client (a Stubber-wrapped one, or one pointed at moto)."""
    with _lock:
        _clients[service] = value


def reset_clients() -> None:
    with _lock:
        _clients.clear()

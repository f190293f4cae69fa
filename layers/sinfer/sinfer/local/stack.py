"""The embedded local stack: sinfer's AWS architecture on one machine, no account, no Docker.

* moto's server on loopback plays AWS (S3, SQS, DynamoDB, SNS); every boto3 client in this
  process points there through ``AWS_ENDPOINT_URL``;
* the resources are created as template.yaml declares them: the data bucket (versioned) with
  its ``inputs/`` → SQS notification, the ingest queue and its DLQ (redrive after the
  template's ``maxReceiveCount``), the jobs table (its key schema and indexes read from the
  template), the notification topic; the demo models are published to ``s3://<bucket>/models/``
  so the functions load them exactly as in Lambda (download, sha256 check, cache);
* predict_api is served over HTTP by the same server as ``sinfer serve``;
* a poller does what Lambda's SQS event source mapping does: it receives batches (the template's
  ``BatchSize``), invokes s3_ingest with a real SQS event, deletes the messages that succeeded
  and lets the failed ones (``batchItemFailures``) return after a short visibility timeout,
  until the queue's redrive policy moves them to the DLQ;
* batch: s3_ingest's request to batch_submit, and the local batch backend's state-change events
  to batch_collect, are asynchronous invocations queued to a worker (as Lambda's async invoke
  and EventBridge would deliver them), and the sweeper runs on a timer as its schedule does.

All functions run in this process, one invocation at a time (one lock), as each Lambda
execution environment would.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sinfer.local.lambda_runtime import LocalFunction, function_environment
from sinfer.local.template import Template

LOCAL_VISIBILITY_TIMEOUT = 5  # seconds; Lambda's is the template's (minutes): locally, retry fast
SWEEP_SECONDS = 30  # the template runs the sweeper every few minutes; locally, more often


class StackError(Exception):
    """The stack cannot start (a port is taken, the template is missing a resource...)."""


# The checkout's own path, as the README gives it: sinfer is installed from a path or git URL,
# not published to a package index, so `pip install 'sinfer[local]'` would find nothing (or
# another project under that name), and both commands that need the extra read the checkout's
# template.yaml anyway.
LOCAL_EXTRA_HINT = (
    "install the package with its local extra (pip install '.[local]' in the checkout), or run make venv"
)


def require_modules(command: str, *modules: str) -> None:
    """StackError naming what is missing, where an installed package lacks the local extra (moto,
    and scikit-learn for the demo's data): one line, not an import traceback from the stack."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise StackError(f"{command} needs {' and '.join(missing)}: {LOCAL_EXTRA_HINT}")


@dataclass(slots=True)
class StackConfig:
    host: str = "127.0.0.1"
    api_port: int = 3000
    aws_port: int = 5000
    bucket: str = "sinfer-data"
    table: str = "sinfer-jobs"
    queue: str = "sinfer-ingest"
    topic: str = "sinfer-notify"
    region: str = "us-east-1"
    models: Path = Path("models")
    template: Path = Path("template.yaml")
    extra_env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False  # no per-request access logs (the demo prints its own story)


@dataclass(slots=True)
class StackStats:
    ingest_invocations: int = 0
    ingest_failures: int = 0
    messages_deleted: int = 0


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def sqs_lambda_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Received SQS messages as the event Lambda's event source mapping builds from them."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", "0"),
                    "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                    "ApproximateFirstReceiveTimestamp": attributes.get(
                        "ApproximateFirstReceiveTimestamp", "0"
                    ),
                },
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody")
                or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def _list_moto_services_once() -> None:
    """moto's server lists its own package folder, with a stat per entry (~150), on every
    request to learn which services it has; the answer never changes in a process. Listing it
    once made the embedded stack ~15% faster on a burst of uploads (each file is ~10 calls)."""
    import moto.backends

    listing = getattr(moto.backends, "list_of_moto_modules", None)
    if listing is None or hasattr(listing, "moto_original"):
        return  # (a moto without it, or already done)
    services = tuple(listing())

    def cached() -> Iterator[str]:
        return iter(services)

    cached.moto_original = listing  # type: ignore[attr-defined]  # (and marks it done)
    moto.backends.list_of_moto_modules = cached


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.template = Template.load(self.config.template)
        self.lock = threading.Lock()
        self.stats = StackStats()
        self.endpoint = f"http://{self.config.host}:{self.config.aws_port}"
        self.api_url = f"http://{self.config.host}:{self.config.api_port}"
        self._moto: Any = None
        self._api: Any = None
        self._functions: dict[str, LocalFunction] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_env: dict[str, str | None] = {}
        self.queue_url = ""
        self.queue_arn = ""
        self.dlq_url = ""
        self.notifications_url = ""
        self.topic_arn = ""

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalStack:
        require_modules("the embedded stack", "moto")
        for name, port in (("AWS endpoint", self.config.aws_port), ("API", self.config.api_port)):
            if not port_free(self.config.host, port):
                raise StackError(
                    f"port {port} on {self.config.host} ({name}) is already in use; pick another"
                )
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        _list_moto_services_once()

        self._moto = ThreadedMotoServer(ip_address=self.config.host, port=self.config.aws_port, verbose=False)
        self._moto.start()
        self._point_clients_here()
        self._create_resources()
        self._publish_models()
        self._start_functions()
        self._start_api()
        self._start_poller()
        self._start_async_invoker()
        return self

    def stop(self) -> None:
        from sinfer.batch.orchestrator import set_local_sink
        from sinfer.batch.trigger import set_local_submitter

        set_local_submitter(None)
        set_local_sink(None)
        self._stop.set()
        if self._api is not None:
            self._api.shutdown()
            self._api.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        # Each function saved the environment it found on entry: leave in reverse order so the
        # first one's saved copy (the process's original environment) is restored last.
        for function in reversed(list(self._functions.values())):
            function.__exit__(None, None, None)
        if self._moto is not None:
            self._moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._reset_caches()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- setup -----------------------------------------------------------------------------

    @property
    def environment(self) -> dict[str, str]:
        """What every function sees here, on top of the template's own variables."""
        c = self.config
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": c.region,
            "AWS_REGION": c.region,
            "MODEL_STORE": f"s3://{c.bucket}/models/",
            "MODEL_CACHE_DIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"sinfer-local-{c.aws_port}"),  # noqa: S108
            "DATA_BUCKET": c.bucket,
            "JOBS_TABLE": c.table,
            "NOTIFY_TOPIC_ARN": self.topic_arn,
            "BATCH_BACKEND": "local",
            "POWERTOOLS_TRACE_DISABLED": "1",
            # One process runs all four functions, and the service is read once, at import: one
            # name for all (else the first function imported would name the others' logs).
            "POWERTOOLS_SERVICE_NAME": os.environ.get("POWERTOOLS_SERVICE_NAME", "sinfer"),
            **c.extra_env,
        }

    def _point_clients_here(self) -> None:
        env = {k: v for k, v in self.environment.items() if k.startswith("AWS_")}
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        self._reset_caches()

    @staticmethod
    def _reset_caches() -> None:
        from sinfer.aws.clients import reset_clients
        from sinfer.config import reset_settings
        from sinfer.inference.registry import reset_default_registry

        reset_clients()
        reset_settings()
        reset_default_registry()

    def _resource(self, logical_id: str) -> dict[str, Any]:
        resource = self.template.resources.get(logical_id)
        if not isinstance(resource, dict):
            raise StackError(f"template.yaml has no {logical_id}; the local stack mirrors it")
        props: dict[str, Any] = self.template.resolver.resolve(resource.get("Properties") or {})
        return props

    def _create_resources(self) -> None:
        from sinfer.aws.clients import client

        c = self.config
        s3, sqs, ddb, sns = client("s3"), client("sqs"), client("dynamodb"), client("sns")
        s3.create_bucket(Bucket=c.bucket)
        s3.put_bucket_versioning(Bucket=c.bucket, VersioningConfiguration={"Status": "Enabled"})

        queue_props = self._resource("IngestQueue")
        max_receive = int((queue_props.get("RedrivePolicy") or {}).get("maxReceiveCount", 5))
        self.dlq_url = sqs.create_queue(QueueName=f"{c.queue}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "{max_receive}"}}'
        self.queue_url = sqs.create_queue(
            QueueName=c.queue,
            Attributes={"VisibilityTimeout": str(LOCAL_VISIBILITY_TIMEOUT), "RedrivePolicy": redrive},
        )["QueueUrl"]
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        bucket_props = self._resource("DataBucket")
        filters = [
            rule
            for config in (bucket_props.get("NotificationConfiguration") or {}).get("QueueConfigurations", [])
            for rule in (config.get("Filter") or {}).get("S3Key", {}).get("Rules", [])
        ] or [{"Name": "prefix", "Value": "inputs/"}]
        s3.put_bucket_notification_configuration(
            Bucket=c.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "sinfer-inputs",
                        "QueueArn": self.queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": filters}},
                    }
                ]
            },
        )
        table_props = self._resource("JobsTable")
        table_args: dict[str, Any] = {
            "TableName": c.table,
            "AttributeDefinitions": table_props["AttributeDefinitions"],
            "KeySchema": table_props["KeySchema"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if table_props.get("GlobalSecondaryIndexes"):
            table_args["GlobalSecondaryIndexes"] = table_props["GlobalSecondaryIndexes"]
        ddb.create_table(**table_args)
        self.topic_arn = sns.create_topic(Name=c.topic)["TopicArn"]
        # A queue subscribed to the topic, so people (and the demo) can read notifications.
        self.notifications_url = sqs.create_queue(QueueName=f"{c.topic}-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=self.notifications_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=inbox_arn,
            Attributes={"RawMessageDelivery": "true"},
        )

    def _publish_models(self) -> None:
        from sinfer.aws.clients import client

        s3 = client("s3")
        root = self.config.models
        for path in sorted(root.glob("*/*/model.*")):
            if path.suffix in (".onnx", ".json"):
                key = f"models/{path.relative_to(root).as_posix()}"
                s3.upload_file(str(path), self.config.bucket, key)

    def stand_in_values(self) -> dict[str, str]:
        """What this stack's functions run with for the template's variables that name stack
        resources (and for BATCH_BACKEND): exported, they point ``sinfer invoke`` and ``sinfer
        serve`` at this stack, where those commands would otherwise leave them empty."""
        values = {
            name: function.environment[name]
            for function in self._functions.values()
            for name in function.spec.placeholders
        }
        values["BATCH_BACKEND"] = self.environment["BATCH_BACKEND"]
        return dict(sorted(values.items()))

    def _start_functions(self) -> None:
        overrides = {"Parameters": self.environment}
        for logical_id in (
            "PredictApiFunction",
            "S3IngestFunction",
            "BatchSubmitFunction",
            "BatchCollectFunction",
        ):
            spec = self.template.function(logical_id)
            function = LocalFunction(spec, function_environment(spec, overrides))
            function.__enter__()
            self._functions[logical_id] = function

    def _start_api(self) -> None:
        from sinfer.cli.serve import bind

        server = bind(self.config.host, self.config.api_port, "1.0", invoke_lock=self.lock)
        if self.config.quiet:

            class QuietHandler(server.RequestHandlerClass):  # type: ignore[name-defined,misc]
                def log_message(self, format: str, *args: Any) -> None:
                    return None

            server.RequestHandlerClass = QuietHandler
        server.function = self._functions["PredictApiFunction"]
        self._api = server
        self._spawn("sinfer-api", server.serve_forever)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- the SQS event source mapping ---------------------------------------------------------

    def _start_poller(self) -> None:
        self._spawn("sinfer-ingest-poller", self._poll_forever)

    def _batch_size(self) -> int:
        props = self._resource("S3IngestFunction")
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "SQS":
                return int((event.get("Properties") or {}).get("BatchSize", 10))
        return 10

    def _poll_forever(self) -> None:
        from sinfer.aws.clients import client

        sqs = client("sqs")
        batch_size = min(10, self._batch_size())
        while not self._stop.is_set():
            try:
                received = sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                )
            except Exception:  # the server is going away
                if self._stop.is_set():
                    return
                time.sleep(0.5)
                continue
            messages = received.get("Messages", [])
            if messages:
                self.deliver(messages)

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        from sinfer.aws.clients import client

        event = sqs_lambda_event(messages, self.queue_arn, self.config.region)
        with self.lock:
            invocation = self._functions["S3IngestFunction"].invoke(event)
        self.stats.ingest_invocations += 1
        if invocation.error is not None:
            failed = {m["MessageId"] for m in messages}  # the whole batch returns to the queue
        else:
            result = invocation.result if isinstance(invocation.result, dict) else {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        self.stats.ingest_failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            client("sqs").delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            self.stats.messages_deleted += len(done)

    # --- asynchronous invocations: batch_submit and batch_collect ------------------------------

    def _start_async_invoker(self) -> None:
        import queue

        from sinfer.batch.orchestrator import set_local_sink
        from sinfer.batch.trigger import set_local_submitter

        self._async: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        set_local_submitter(lambda job_id: self.invoke_async("BatchSubmitFunction", {"job_id": job_id}))
        set_local_sink(lambda event: self.invoke_async("BatchCollectFunction", event))
        self._spawn("sinfer-async-invoke", self._invoke_forever)
        self._spawn("sinfer-sweeper", self._sweep_forever)

    def invoke_async(self, logical_id: str, event: dict[str, Any]) -> None:
        """Queue an event for a function, as an asynchronous invoke or an EventBridge target."""
        self._async.put((logical_id, event))

    def _invoke_forever(self) -> None:
        import queue

        while not self._stop.is_set():
            try:
                logical_id, event = self._async.get(timeout=0.5)
            except queue.Empty:
                continue
            with self.lock:
                self._functions[logical_id].invoke(event)
            self._async.task_done()

    def _sweep_forever(self) -> None:
        while not self._stop.wait(SWEEP_SECONDS):
            self.invoke_async("BatchCollectFunction", {"action": "sweep"})

    # --- helpers for people and the demo ---------------------------------------------------

    def queue_depth(self) -> int:
        from sinfer.aws.clients import client

        attrs = client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def wait_for_object(self, key: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until ``key`` exists in the data bucket; returns its head."""
        from sinfer.aws.clients import client

        deadline = time.monotonic() + timeout
        s3 = client("s3")
        while True:
            with contextlib.suppress(Exception):
                head: dict[str, Any] = s3.head_object(Bucket=self.config.bucket, Key=key)
                return head
            if time.monotonic() > deadline:
                raise TimeoutError(f"s3://{self.config.bucket}/{key} did not appear within {timeout:.0f}s")
            time.sleep(0.2)

    def notifications(self) -> Iterator[dict[str, Any]]:
        """Drain job notifications published so far."""
        import json

        from sinfer.aws.clients import client

        sqs = client("sqs")
        while True:
            received = sqs.receive_message(
                QueueUrl=self.notifications_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = received.get("Messages", [])
            if not messages:
                return
            for message in messages:
                yield json.loads(message["Body"])
                sqs.delete_message(QueueUrl=self.notifications_url, ReceiptHandle=message["ReceiptHandle"])

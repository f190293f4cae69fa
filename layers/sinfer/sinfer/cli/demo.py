"""``sinfer demo``: a scripted tour of every mode on the embedded stack (what ``make demo`` runs).

It starts ``sinfer local`` on free ports, then drives it only through public interfaces — HTTP
to the API, boto3 against the local AWS endpoint — and checks what comes back: real-time
predictions for the image and tabular demo models, files uploaded to ``inputs/`` coming back as
prediction files, a job through ``POST /jobs``, a file too large for Lambda going through the
SageMaker Batch Transform path, and a foundation-model job through the Bedrock batch path (both
answered by the local batch emulator). Last, the edge mode: ``sinfer models pull`` takes the
model from the stack's S3 store (its sha256 checked), and ``sinfer predict``, in a process with
no AWS endpoint or credentials, predicts a file with it. It ends with a summary table and exits
non-zero, saying which step failed, if any did.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinfer.cli import CliError, Commands, help_text
from sinfer.local.lambda_runtime import logs_to_stderr
from sinfer.local.stack import LocalStack, StackError, free_port, require_modules


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="a tour of every mode on the embedded stack (what `make demo` runs)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", default="models", help="model store folder (default: models)")
    parser.add_argument(
        "-t", "--template", default="template.yaml", help="the SAM template (default: template.yaml)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each async step")
    parser.set_defaults(run=run)


@dataclass(slots=True)
class Step:
    name: str
    result: str
    seconds: float
    where: str = ""


class DemoError(Exception):
    """A step's outcome is not what it should be."""


class Tour:
    def __init__(self, stack: LocalStack, timeout: float, out: Any) -> None:
        self.stack = stack
        self.timeout = timeout
        self.out = out
        self.steps: list[Step] = []
        from sinfer.aws.clients import client

        self.s3 = client("s3")
        self.bucket = stack.config.bucket

    # --- plumbing ----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def http(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback URL built here
            self.stack.api_url + path, data=body, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise DemoError(f"{method} {path} answered {exc.code}: {exc.read()[:300]!r}") from None

    def run_step(self, name: str, action: Callable[[], tuple[str, str]]) -> None:
        self.say(f"\n== {name}")
        started = time.perf_counter()
        try:
            result, where = action()
        except DemoError:
            raise
        except Exception as exc:
            raise DemoError(f"{name}: {type(exc).__name__}: {exc}") from exc
        self.steps.append(Step(name, result, time.perf_counter() - started, where))
        self.say(f"   ok: {result}")

    def wait_summary(self, key: str) -> dict[str, Any]:
        head = self.stack.wait_for_object(key, self.timeout)
        del head
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        summary: dict[str, Any] = json.loads(body)
        return summary

    def lines(self, key: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines() if line]

    # --- the steps ---------------------------------------------------------------------------

    def realtime_image(self) -> tuple[str, str]:
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        correct = 0
        picks = list(range(1700, 1720))
        for index in picks:
            pixels = (digits.data[index].reshape(8, 8) * 255 / 16).round().astype("uint8")
            buffer = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
            doc = self.http("POST", "/v1/models/digits:predict", buffer.getvalue(), "image/png")
            label = doc["predictions"][0]["label"]
            correct += int(label == str(digits.target[index]))
        self.say(f"   20 PNG digits sent as raw image/png bodies: {correct}/20 match the true digit")
        if correct < 16:
            raise DemoError(f"only {correct}/20 digits recognised")
        return f"{correct}/20 PNG digits recognised", "POST /v1/models/digits:predict"

    def realtime_tabular(self) -> tuple[str, str]:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        rows = list(range(0, 569, 57))
        instances = [dict(zip(data.feature_names, data.data[i].tolist(), strict=True)) for i in rows]
        doc = self.http(
            "POST", "/v1/models/breast_cancer:predict", json.dumps({"instances": instances}).encode()
        )
        labels = [p["label"] for p in doc["predictions"]]
        truth = [data.target_names[data.target[i]] for i in rows]
        correct = sum(a == b for a, b in zip(labels, truth, strict=True))
        first = doc["predictions"][0]
        self.say(f"   first prediction: {json.dumps(first)}")
        v2 = self.http(
            "POST",
            "/v2/models/breast_cancer/infer",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [3, 30],
                            "datatype": "FP32",
                            "data": data.data[:3].tolist(),
                        }
                    ]
                }
            ).encode(),
        )
        self.say(f"   Open Inference Protocol v2 output_label: {v2['outputs'][0]['data']}")
        return (
            f"{correct}/{len(rows)} tabular rows correct (KServe v1 + OIP v2)",
            "POST /v1/models/breast_cancer:predict",
        )

    def async_csv(self) -> tuple[str, str]:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["id", *data.feature_names])
        for i in range(200):
            writer.writerow([f"patient-{i:03d}", *data.data[i].tolist()])
        writer.writerow(["patient-bad", "not a number", *data.data[0].tolist()[1:]])
        key = "inputs/breast_cancer/demo/patients.csv"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.getvalue().encode())
        self.say(f"   uploaded s3://{self.bucket}/{key} (201 rows, one bad)")
        summary = self.wait_summary("outputs/breast_cancer/demo/patients.csv.summary.json")
        counts = summary["counts"]
        lines = self.lines("outputs/breast_cancer/demo/patients.csv.predictions.jsonl")
        self.say(f"   summary counts: {counts}; last line: {json.dumps(lines[-1])[:160]}")
        if counts != {"records": 201, "predictions": 200, "errors": 1} or len(lines) != 201:
            raise DemoError(f"expected 201 records = 200 predictions + 1 error, got {counts}")
        return (
            "201 records = 200 predictions + 1 error",
            "outputs/breast_cancer/demo/patients.csv.predictions.jsonl",
        )

    def async_image(self) -> tuple[str, str]:
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = (digits.data[1797 - 7].reshape(8, 8) * 255 / 16).round().astype("uint8")
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
        key = "inputs/digits/demo/scan.png"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())
        summary = self.wait_summary("outputs/digits/demo/scan.png.summary.json")
        lines = self.lines("outputs/digits/demo/scan.png.predictions.jsonl")
        label = lines[0].get("prediction", {}).get("label")
        self.say(f"   {key} → label {label} (true digit {digits.target[1797 - 7]}), {summary['counts']}")
        if summary["status"] != "COMPLETED":
            raise DemoError(f"image job ended {summary['status']}")
        return f"PNG upload predicted as {label}", "outputs/digits/demo/scan.png.predictions.jsonl"

    def jobs_api(self) -> tuple[str, str]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        created = self.http(
            "POST", "/jobs", json.dumps({"model": "digits", "instances": digits.data[:25].tolist()}).encode()
        )
        job_id = created["job_id"]
        self.say(f"   POST /jobs → 202 {job_id} ({created['status']})")
        deadline = time.monotonic() + self.timeout
        while True:
            job = self.http("GET", f"/jobs/{job_id}")
            if job["status"] in ("COMPLETED", "FAILED"):
                break
            if time.monotonic() > deadline:
                raise DemoError(f"job {job_id} still {job['status']} after {self.timeout:.0f}s")
            time.sleep(0.3)
        if job["status"] != "COMPLETED":
            raise DemoError(f"job {job_id} failed: {job.get('error')}")
        with urllib.request.urlopen(job["result_url"], timeout=30) as response:  # noqa: S310 - local endpoint
            results = [json.loads(line) for line in response.read().decode().splitlines() if line]
        self.say(
            f"   GET /jobs/{job_id} → COMPLETED {job['counts']}; "
            f"{len(results)} lines from the presigned result_url"
        )
        if len(results) != 25:
            raise DemoError(f"expected 25 result lines, got {len(results)}")
        return f"25 inline instances → {job['counts']['predictions']} predictions", f"GET /jobs/{job_id}"

    def batch_sagemaker(self) -> tuple[str, str]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        count = 6_000
        rows = "\n".join(
            json.dumps({"id": f"scan-{i:05d}", "instance": digits.data[i % 1797].tolist()})
            for i in range(count)
        )
        key = "inputs/digits/demo/archive.jsonl"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=rows.encode())
        size_mb = len(rows) / 1e6
        self.say(
            f"   uploaded {size_mb:.1f} MB ({count:,} records); "
            "MAX_INLINE_BYTES is 2 MB here, so it goes to batch"
        )
        summary = self.wait_summary("outputs/digits/demo/archive.jsonl.summary.json")
        lines = self.lines("outputs/digits/demo/archive.jsonl.predictions.jsonl")
        correct = sum(
            1
            for i, line in enumerate(lines)
            if line.get("prediction", {}).get("label") == str(digits.target[i % 1797])
        )
        self.say(
            f"   {summary['backend']}: {summary['shards']} shard(s), {summary['counts']}, "
            f"{correct / count:.1%} match the true digits; "
            f"ids in input order: {lines[0]['id']} … {lines[-1]['id']}"
        )
        if summary["counts"]["records"] != count or [line["id"] for line in lines[:3]] != [
            "scan-00000",
            "scan-00001",
            "scan-00002",
        ]:
            raise DemoError(f"batch results incomplete or out of order: {summary['counts']}")
        return (
            f"{count:,} records via Batch Transform (emulated) → "
            f"{summary['counts']['predictions']:,} predictions",
            ("outputs/digits/demo/archive.jsonl.predictions.jsonl"),
        )

    def batch_bedrock(self) -> tuple[str, str]:
        texts = [
            f"Ticket {i}: the customer reports that the {['app', 'invoice', 'login', 'export'][i % 4]} "
            f"{['crashes on start', 'shows the wrong total', 'times out', 'drops columns'][i % 4]} "
            "since Tuesday."
            for i in range(180)
        ]
        body = "\n".join(json.dumps({"id": f"ticket-{i}", "text": t}) for i, t in enumerate(texts))
        body += "\n" + json.dumps({"id": "ticket-empty", "text": ""})
        key = "inputs/claude_summarize/demo/tickets.jsonl"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode())
        self.say("   uploaded 181 support tickets for claude_summarize (a Bedrock foundation-model entry)")
        summary = self.wait_summary("outputs/claude_summarize/demo/tickets.jsonl.summary.json")
        lines = self.lines("outputs/claude_summarize/demo/tickets.jsonl.predictions.jsonl")
        self.say(f"   first: {json.dumps(lines[0])[:150]}")
        self.say(f"   last:  {json.dumps(lines[-1])[:150]}")
        self.say(
            f"   {summary['backend']}: {summary['counts']}, tokens {summary['tokens']}, "
            f"cost estimate ${summary['cost_estimate']['usd']}"
        )
        if summary["counts"] != {"records": 181, "predictions": 180, "errors": 1}:
            raise DemoError(f"expected 180 summaries and 1 error line, got {summary['counts']}")
        return "181 records via Bedrock batch (emulated) → 180 + 1 error", (
            "outputs/claude_summarize/demo/tickets.jsonl.predictions.jsonl"
        )

    def edge_offline(self) -> tuple[str, str]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        rows = range(1720, 1760)
        with tempfile.TemporaryDirectory(prefix="sinfer-demo-edge-") as scratch:
            folder = Path(scratch)
            store = folder / "models"
            aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
            self._cli("models", "pull", "digits", "--from", f"s3://{self.bucket}/models/", "--to", str(store),
                      env=aws)  # fmt: skip
            self.say(f"   pulled digits from s3://{self.bucket}/models/ into {store} (sha256 checked)")
            data = folder / "digits.csv"
            data.write_text(
                "\n".join([",".join(f"p{i}" for i in range(64))]
                          + [",".join(str(int(v)) for v in digits.data[r]) for r in rows]) + "\n"
            )  # fmt: skip
            out = folder / "digits.predictions.jsonl"
            # offline: no endpoint, no credentials, no store but the pulled folder
            self._cli(
                "predict", str(store / "digits" / "1"), str(data), "-o", str(out), "--no-progress", env={}
            )
            lines = [json.loads(line) for line in out.read_text().splitlines()]
        correct = sum(
            line["prediction"]["label"] == str(digits.target[r]) for line, r in zip(lines, rows, strict=True)
        )
        self.say(f"   sinfer predict, offline, on {len(lines)} CSV rows: {correct} match the true digit")
        if len(lines) != len(rows) or correct < 32:
            raise DemoError(f"offline predict: {correct} of {len(lines)} lines right, for {len(rows)} rows")
        return f"{correct}/{len(rows)} rows right, offline", "sinfer models pull + sinfer predict"

    def _cli(self, *args: str, env: dict[str, str]) -> None:
        """Run the sinfer CLI in its own process, with this environment less AWS's and the stack's
        model store, plus ``env``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MODEL_STORE"}
        done = subprocess.run(  # noqa: S603 - this interpreter, our own CLI
            [sys.executable, "-m", "sinfer.cli.main", *args],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if done.returncode != 0:
            raise DemoError(
                f"sinfer {' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()[-300:]}"
            )

    def notifications(self) -> tuple[str, str]:
        received = list(self.stack.notifications())
        statuses = sorted({str(n.get("status")) for n in received})
        self.say(f"   {len(received)} SNS notifications: {statuses}")
        if len(received) < 5:
            raise DemoError(f"expected at least 3 job notifications, got {len(received)}")
        return f"{len(received)} job notifications", f"SNS {self.stack.topic_arn.rsplit(':', 1)[-1]}"

    def summary(self) -> str:
        width = max(len(s.name) for s in self.steps)
        lines = [f"{'step'.ljust(width)}  {'seconds':>7}  result / where"]
        for step in self.steps:
            lines.append(f"{step.name.ljust(width)}  {step.seconds:7.2f}  {step.result}")
            lines.append(f"{''.ljust(width)}           {step.where}")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sinfer.cli.local import stack_config

    args.host, args.api_port, args.aws_port = "127.0.0.1", free_port(), free_port()
    config = stack_config(args)
    config.extra_env.update(
        MAX_INLINE_BYTES=str(2_000_000), POWERTOOLS_LOG_LEVEL="WARNING", LOG_LEVEL="WARNING"
    )
    config.quiet = True
    try:
        require_modules("sinfer demo", "moto", "sklearn")  # (its inputs are scikit-learn's data)
    except StackError as exc:
        raise CliError(str(exc)) from None
    with logs_to_stderr() as stdout:
        stdout.write(
            "sinfer demo: starting the embedded stack (moto on loopback, the API, S3 → SQS → s3_ingest)\n"
        )
        try:
            stack = LocalStack(config).start()
        except StackError as exc:
            raise CliError(str(exc)) from None
        tour = Tour(stack, args.timeout, stdout)
        tour.say(f"   API {stack.api_url}, AWS endpoint {stack.endpoint}, bucket s3://{config.bucket}/")
        try:
            tour.run_step("real-time: image model (PNG)", tour.realtime_image)
            tour.run_step("real-time: tabular model", tour.realtime_tabular)
            tour.run_step("async: CSV upload to inputs/", tour.async_csv)
            tour.run_step("async: PNG upload to inputs/", tour.async_image)
            tour.run_step("jobs API: POST /jobs", tour.jobs_api)
            tour.run_step("batch: large file → SageMaker path", tour.batch_sagemaker)
            tour.run_step("batch: Bedrock-format job", tour.batch_bedrock)
            tour.run_step("notifications", tour.notifications)
            tour.run_step("edge: pull, then predict offline", tour.edge_offline)
        except DemoError as exc:
            print(f"\nsinfer demo: FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop()
        tour.say("\n" + tour.summary())
        tour.say(
            f"\nsinfer demo: all {len(tour.steps)} steps passed. `make local` keeps the stack up to explore."
        )
    return 0

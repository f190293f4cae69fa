"""Build the sample batch events under events/batch/ (run from the repo root):

    python -m events.build_batch_events            # writes events/batch/*.json
    python -m events.build_batch_events --check    # exits 1 if the committed files differ

batch_collect receives EventBridge state changes of the jobs sinfer submits (one job per shard,
named after the shard) and the sweeper's schedule; batch_submit receives the scheduled run.
State changes are made by :func:`sinfer.batch.backends.bedrock_event` and
:func:`sinfer.batch.backends.sagemaker_event`, the builders the local emulator sends its events
with, so these samples, the emulator and the collector cannot disagree on a field. The two
schedule inputs are read from template.yaml (the Sweeper rule's ``Input`` and the BatchSchedule
target's ``Input``), so they are exactly what the deployed rules deliver.

The shards named here belong to files that do not exist: delivered as they are, batch_collect
answers "unknown job" and changes nothing. Tests retarget them at the shards they create
(``tests/functional/conftest.py``: ``batch_event``). Nothing depends on the time or on
randomness, so regenerating gives identical files.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events._generate import run
from events._generate import stale as stale  # the tests check the committed files with it
from sinfer.batch.backends import bedrock_event, sagemaker_event
from sinfer.jobs.types import object_job_id
from sinfer.local.template import Template

ROOT = Path(__file__).resolve().parent / "batch"
TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
BUCKET = "sinfer-data"
REGION_ACCOUNT = "us-east-1:123456789012"
# A shard of a large upload to the Bedrock entry, and one of an upload to an ONNX model.
BEDROCK_SHARD = object_job_id(BUCKET, "inputs/claude_summarize/reviews.jsonl", "v1") + "-s0000"
SAGEMAKER_SHARD = object_job_id(BUCKET, "inputs/digits/scans.jsonl", "v1") + "-s0000"
# Bedrock names a job's outputs after the last part of its ARN: 12 lowercase letters and digits.
BEDROCK_JOB_ID = "k2x7q9m4v1ab"
BEDROCK_ARN = f"arn:aws:bedrock:{REGION_ACCOUNT}:model-invocation-job/{BEDROCK_JOB_ID}"
SCHEDULED_MODEL = "digits"


@dataclass(frozen=True)
class SampleEvent:
    name: str
    event: dict[str, Any]
    about: str


def _schedule_inputs() -> tuple[dict[str, Any], dict[str, Any]]:
    """What the template's Sweeper rule and BatchSchedule send (their constant ``Input``)."""
    template = Template.load(TEMPLATE, {"BatchScheduleModel": SCHEDULED_MODEL})
    resources = template.resources
    sweep = resources["BatchCollectFunction"]["Properties"]["Events"]["Sweeper"]["Properties"]["Input"]
    run = resources["BatchSchedule"]["Properties"]["Target"]["Input"]
    return json.loads(template.resolver.resolve(sweep)), json.loads(template.resolver.resolve(run))


def events() -> list[SampleEvent]:
    bedrock = [
        ("Completed", "", "every record was processed (error lines may still be inside)"),
        ("PartiallyCompleted", "", "some records were not processed in time"),
        (
            "Failed",
            "Access denied to the input file: check the service role's s3:GetObject permission.",
            "the job failed as a whole",
        ),
        ("Stopped", "", "someone stopped the job"),
        (
            "Expired",
            "The job did not start within the timeout duration (timeoutDurationInHours).",
            "the job timed out before it ran",
        ),
        ("InProgress", "", "not terminal: the deployed rule filters it out, the collector ignores it"),
    ]
    sagemaker = [
        ("Completed", "", "the transform job wrote `<input>.out`"),
        ("Failed", "ClientError: See job logs for more information", "the transform job failed"),
        ("Stopped", "", "someone stopped the transform job"),
    ]
    found = [
        SampleEvent(
            f"bedrock_{_snake(status)}",
            bedrock_event(BEDROCK_SHARD, BEDROCK_ARN, status, message),
            f"Bedrock batch inference job {status}: {about}",
        )
        for status, message, about in bedrock
    ]
    found += [
        SampleEvent(
            f"sagemaker_{_snake(status)}",
            sagemaker_event(SAGEMAKER_SHARD, status, message),
            f"SageMaker transform job {status}: {about}",
        )
        for status, message, about in sagemaker
    ]
    sweep, run = _schedule_inputs()
    found += [
        SampleEvent("sweep", sweep, "the sweeper's schedule (the template's Sweeper rule input)"),
        SampleEvent(
            "scheduled_run",
            run,
            f"the scheduled batch run (BatchSchedule's input, with BatchScheduleModel={SCHEDULED_MODEL})",
        ),
    ]
    return found


def _snake(status: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(status))


def build() -> dict[Path, bytes]:
    """Every file under events/batch/ (but the README), by path, with its exact bytes."""
    return {
        ROOT / f"{sample.name}.json": (json.dumps(sample.event, indent=2) + "\n").encode("utf-8")
        for sample in events()
    }


def main(argv: list[str] | None = None) -> int:
    return run(__doc__, ROOT, build, argv)


if __name__ == "__main__":
    sys.exit(main())

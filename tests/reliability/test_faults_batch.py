"""The batch path under backend faults: every record is in the merged output exactly once.

Jobs end Failed, Stopped, Expired or PartiallyCompleted; "Completed" jobs leave output files
missing or short; state-change events arrive twice, out of order, late, or never (the
sweeper's poll finds them). A scripted backend stands in for SageMaker and Bedrock: it is the
local emulator's class (so the orchestrator drives it as it drives the emulator), but each
shard attempt ends as the test says and writes the output layout the real service writes,
with predictions that name their record, so the test checks the join, not just the counts.

After each scenario: one merged output line per input record, in input order, each the
record's own prediction or an error that says why; the parent job COMPLETED with counts equal
to the file's; one notification.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sinfer.aws import s3
from sinfer.batch import orchestrator
from sinfer.batch.backends import LocalBackend, Target, bedrock_event, sagemaker_event
from sinfer.batch.bedrock.emulator import emulate
from sinfer.batch.bedrock.entry import BedrockEntry
from sinfer.batch.bedrock.families import batch_output_line, output_uri_for, parse_model_output
from sinfer.config import Settings
from sinfer.inference.registry import default_registry
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job
from tests.functional.conftest import AwsStack, Configure, routed_job
from tests.reliability.conftest import assert_accounted, outputs

RECORDS = 10
PER_SHARD = 4  # 10 records → shards of 4, 4 and 2

# What one record's line in a shard attempt's output is.
OK, MISSING, MODEL_ERROR, THROTTLED, REFUSED = "ok", "missing", "model_error", "throttled", "refused"


@dataclass
class Attempt:
    """How one shard attempt ends: the backend's status and each sent record's output line."""

    status: str = "Completed"
    lines: str | list[str] = OK  # one outcome for all, or one per sent record
    no_output_file: bool = False


Script = dict[tuple[int, int], Attempt]  # (shard index, attempt) → how it ends; default: all good


class ScriptedBackend(LocalBackend):
    """The emulator's place in the orchestrator, ending each shard attempt as the script says.

    With ``hold``, state-change events are kept in ``held`` for the test to deliver (or lose)
    instead of reaching the collector.
    """

    def __init__(self, config: Settings, script: Script, hold: bool = False) -> None:
        super().__init__(config, sink=None)
        self.script = script
        self.hold = hold
        self.held: list[dict[str, Any]] = []
        self.submitted: list[str] = []

    def submit(self, shard: Job, target: Target) -> str:
        self.submitted.append(shard.job_id)
        attempt = self.script.get((int(shard.extra["shard"]), int(shard.extra["attempt"])), Attempt())
        sent = [json.loads(line) for line in s3.iter_lines(*_split(shard.input)) if line.strip()]
        outcomes = [attempt.lines] * len(sent) if isinstance(attempt.lines, str) else attempt.lines
        assert len(outcomes) == len(sent)
        if not attempt.no_output_file:
            _write_outputs(shard, target, sent, outcomes)
        self._status[shard.job_id] = (attempt.status, f"scripted {attempt.status}")
        if target.kind == "bedrock":
            arn = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{shard.job_id}"
            event = bedrock_event(shard.job_id, arn, attempt.status, f"scripted {attempt.status}")
        else:
            event = sagemaker_event(shard.job_id, attempt.status, f"scripted {attempt.status}")
        if self.hold:
            self.held.append(event)
        else:
            self._emit(event)
        return shard.job_id


def _split(uri: str) -> tuple[str, str]:
    parsed = s3.S3Uri.parse(uri)
    return parsed.bucket, parsed.key


def _write_outputs(shard: Job, target: Target, sent: list[dict[str, Any]], outcomes: list[str]) -> None:
    lines: list[bytes] = []
    for line, outcome in zip(sent, outcomes, strict=True):
        if outcome == MISSING:
            continue
        if target.kind == "bedrock":
            assert target.entry is not None
            rid, model_input = line["recordId"], line["modelInput"]
            if outcome == OK:
                lines.append(batch_output_line(rid, model_input, emulate(target.entry, model_input)))
            else:
                code = 503 if outcome == THROTTLED else 400
                lines.append(batch_output_line(rid, model_input, error=(code, f"scripted {outcome}")))
        elif outcome == OK:  # the container's line: a prediction naming its record
            lines.append(json.dumps({"prediction": {"echo": line["instance"][0]}}).encode() + b"\n")
        else:
            lines.append(
                json.dumps({"error": {"code": "invalid_input", "message": "scripted"}}).encode() + b"\n"
            )
    if target.kind == "bedrock":
        random.Random(shard.job_id).shuffle(lines)  # Bedrock does not keep input order
        out = s3.S3Uri.parse(output_uri_for(shard.output, shard.job_id, shard.input))
    elif MISSING in outcomes:  # SageMaker joins by position: a short file can only lose its tail
        first = outcomes.index(MISSING)
        assert all(o == MISSING for o in outcomes[first:])
        out = s3.S3Uri.parse(shard.output.rstrip("/") + "/input.jsonl.out")
    else:
        out = s3.S3Uri.parse(shard.output.rstrip("/") + "/input.jsonl.out")
    s3.put_bytes(out.bucket, out.key, b"".join(lines))


# --- the two kinds of file ----------------------------------------------------------------------


def _digits_file() -> tuple[bytes, list[str]]:
    """Records whose first pixel is their number, so a prediction echoing it names its record."""
    ids = [f"d{i}" for i in range(RECORDS)]
    lines = [json.dumps({"id": rid, "instance": [i] + [0] * 63}) for i, rid in enumerate(ids)]
    return ("\n".join(lines) + "\n").encode(), ids


def _texts_file() -> tuple[bytes, list[str]]:
    ids = [f"t{i}" for i in range(RECORDS)]
    lines = [json.dumps({"id": rid, "text": f"record number {i}"}) for i, rid in enumerate(ids)]
    return ("\n".join(lines) + "\n").encode(), ids


def _expected_prediction(kind: str, index: int) -> Any:
    if kind == "sagemaker":
        return {"echo": index}
    manifest = default_registry().manifest("titan_embed")[1]
    assert manifest is not None
    entry = BedrockEntry.from_manifest(manifest)
    from sinfer.batch.bedrock.families import build_model_input

    output = emulate(entry, build_model_input(entry, {"text": f"record number {index}"}))
    return parse_model_output(entry, output).prediction


@dataclass
class Batch:
    aws: AwsStack
    ctx: orchestrator.Context
    backend: ScriptedBackend
    job_id: str
    key: str
    ids: list[str]
    kind: str

    def merged(self, errors: dict[int, str] | None = None) -> dict[str, Any]:
        """Assert the end state: every record once, in order; return the parent job."""
        errors = errors or {}
        lines = self.aws.lines(outputs(self.key)[0])
        assert_accounted(lines, self.ids)
        for index, line in enumerate(lines):
            if index in errors:
                assert line["error"]["code"] == errors[index], (index, line)
                assert line["error"]["message"]
            else:
                assert line.get("prediction") == _expected_prediction(self.kind, index), (index, line)
        counts = {"records": RECORDS, "predictions": RECORDS - len(errors), "errors": len(errors)}
        summary = self.aws.json(outputs(self.key)[1])
        assert (summary["status"], summary["counts"], summary["records_match"]) == ("COMPLETED", counts, True)
        job = self.aws.job(self.job_id)
        assert job is not None
        assert (job["status"], job["counts"]) == ("COMPLETED", counts)
        assert [(n["job_id"], n["status"]) for n in self.aws.notifications()] == [(self.job_id, "COMPLETED")]
        shards = self.ctx.jobs.children(self.job_id)
        assert all(s.status in ("COMPLETED", "FAILED") for s in shards)
        return job


@pytest.fixture
def batch(aws: AwsStack, configure: Configure) -> Callable[..., Batch]:
    """A ROUTED file of 10 records and a context whose backend follows ``script``."""

    def make(kind: str, script: Script | None = None, *, hold: bool = False, attempts: int = 2) -> Batch:
        config = configure(
            BATCH_BACKEND="local",
            BATCH_MAX_ATTEMPTS=attempts,
            SAGEMAKER_MAX_RECORDS=PER_SHARD,
            BEDROCK_MAX_RECORDS=PER_SHARD,
            BEDROCK_MIN_RECORDS=1,  # every shard a batch job (no real-time remainder)
        )
        backend = ScriptedBackend(config, script or {}, hold)
        ctx = orchestrator.Context(config, JobStore.of(config), default_registry(), backend)
        body, ids = _digits_file() if kind == "sagemaker" else _texts_file()
        model = "digits" if kind == "sagemaker" else "titan_embed"
        key = f"inputs/{model}/batch/records.jsonl"
        return Batch(aws, ctx, backend, routed_job(aws, key, body, model), key, ids, kind)

    return make


# --- 1. jobs that end badly -------------------------------------------------------------------------

SAGEMAKER = [
    # (what, script, retries, errors expected in the merged output: record index → code)
    ("all good", {}, 0, {}),
    ("a shard Failed, its retry Completed", {(1, 1): Attempt("Failed", MISSING, no_output_file=True)}, 1, {}),
    (
        "a shard Stopped half-way, its retry Completed",
        {(0, 1): Attempt("Stopped", [OK, OK, MISSING, MISSING])},
        1,
        {},
    ),
    (
        "Completed but its output file is missing, twice",
        {(2, 1): Attempt(no_output_file=True), (2, 2): Attempt(no_output_file=True)},
        1,
        {8: "not_processed", 9: "not_processed"},
    ),
    (
        "Completed with a line short, then Failed on retry",
        {
            (1, 1): Attempt(lines=[OK, OK, OK, MISSING]),
            (1, 2): Attempt("Failed", MISSING, no_output_file=True),
        },
        1,
        {7: "not_processed"},
    ),
    (
        "the model's own error lines are final",
        {(0, 1): Attempt(lines=[OK, MODEL_ERROR, OK, OK])},
        0,
        {1: "invalid_input"},
    ),
]


@pytest.mark.parametrize(
    ("what", "script", "retries", "errors"), SAGEMAKER, ids=[case[0] for case in SAGEMAKER]
)
def test_sagemaker_shards_that_fail_stop_or_lose_output_still_account_for_every_record(
    batch: Callable[..., Batch], what: str, script: Script, retries: int, errors: dict[int, str]
) -> None:
    run = batch("sagemaker", script)
    orchestrator.submit(run.job_id, run.ctx)
    run.merged(errors)
    # what may succeed next time was retried (BATCH_MAX_ATTEMPTS=2 in all), and only that
    assert len(run.backend.submitted) == 3 + retries


BEDROCK = [
    # (what, script, retries, errors expected in the merged output: record index → code)
    ("all good", {}, 0, {}),
    (
        "PartiallyCompleted: throttled and unreached records are retried",
        {(0, 1): Attempt("PartiallyCompleted", [OK, THROTTLED, MISSING, OK])},
        1,
        {},
    ),
    (
        "Expired before writing anything, then Completed",
        {(1, 1): Attempt("Expired", MISSING, no_output_file=True)},
        1,
        {},
    ),
    ("Stopped part-way, then Completed", {(2, 1): Attempt("Stopped", [OK, MISSING])}, 1, {}),
    (
        "4xx errors are final; 5xx are retried until attempts run out",
        {
            (0, 1): Attempt("PartiallyCompleted", [REFUSED, THROTTLED, OK, OK]),
            (0, 2): Attempt("Failed", [THROTTLED]),
        },
        1,
        {0: "bedrock_400", 1: "bedrock_503"},
    ),
    (
        "Failed twice without output",
        {
            (1, 1): Attempt("Failed", MISSING, no_output_file=True),
            (1, 2): Attempt("Failed", MISSING, no_output_file=True),
        },
        1,
        {4: "not_processed", 5: "not_processed", 6: "not_processed", 7: "not_processed"},
    ),
]


@pytest.mark.parametrize(("what", "script", "retries", "errors"), BEDROCK, ids=[case[0] for case in BEDROCK])
def test_bedrock_jobs_failed_stopped_expired_or_partial_still_account_for_every_record(
    batch: Callable[..., Batch], what: str, script: Script, retries: int, errors: dict[int, str]
) -> None:
    run = batch("bedrock", script)
    orchestrator.submit(run.job_id, run.ctx)
    job = run.merged(errors)
    assert job["backend"] == "bedrock"
    # retried: records never reached and 5xx errors, once (BATCH_MAX_ATTEMPTS=2); never 4xx
    assert len(run.backend.submitted) == 3 + retries


# --- 2. events: duplicated, out of order, late, lost ----------------------------------------------


def _deliver_held(run: Batch, order: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> int:
    """Deliver held events (and those their handling produces) in ``order``; return how many."""
    delivered = 0
    while run.backend.held:
        events, run.backend.held = order(run.backend.held), []
        for event in events:
            orchestrator.handle_state_change(event, run.ctx)
            delivered += 1
    return delivered


def _in_progress(event: dict[str, Any]) -> dict[str, Any]:
    late: dict[str, Any] = json.loads(json.dumps(event))
    if event["source"] == "aws.sagemaker":
        late["detail"]["TransformJobStatus"] = "InProgress"
    else:
        late["detail"]["status"] = "InProgress"
    return late


@pytest.mark.parametrize("kind", ["sagemaker", "bedrock"])
def test_duplicate_out_of_order_and_late_events_collect_and_merge_once(
    batch: Callable[..., Batch], kind: str
) -> None:
    # GIVEN every shard's state change is held back, and one shard needs a retry
    run = batch(
        kind,
        {(0, 1): Attempt("Failed" if kind == "sagemaker" else "Expired", MISSING, no_output_file=True)},
        hold=True,
    )
    orchestrator.submit(run.job_id, run.ctx)
    assert run.aws.keys("outputs/") == []

    # WHEN they arrive newest first, each twice, each followed by a stale "InProgress"
    def shuffled(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for event in reversed(events) for e in (event, event, _in_progress(event))]

    delivered = _deliver_held(run, shuffled)

    # THEN each shard was collected once (the retry too), and the file merged once
    assert delivered == 3 * 4  # three shards and one retry, three events each
    run.merged()
    assert len(run.backend.submitted) == 4


@pytest.mark.parametrize("kind", ["sagemaker", "bedrock"])
def test_lost_events_are_found_by_the_sweeper(batch: Callable[..., Batch], kind: str) -> None:
    # GIVEN EventBridge loses every state change (the backend's status still says how it ended)
    run = batch(kind, {(2, 1): Attempt("Stopped", MISSING, no_output_file=True)}, hold=True)
    orchestrator.submit(run.job_id, run.ctx)

    # WHEN the scheduled sweeper runs (twice: the first run collects and queues the retry,
    # the second collects the retry and merges)
    for _ in range(3):
        run.backend.held.clear()
        orchestrator.sweep(run.ctx)

    # THEN the file is merged as if every event had arrived, and sweeping again changes nothing
    run.merged()
    orchestrator.sweep(run.ctx)
    assert run.aws.notifications() == []  # no second notification


def test_an_event_for_a_job_sinfer_does_not_own_is_ignored(batch: Callable[..., Batch]) -> None:
    run = batch("sagemaker")
    for event in (
        sagemaker_event("someone-elses-job", "Completed"),
        bedrock_event("x", "arn:aws:bedrock:us-east-1:1:model-invocation-job/x", "Failed"),
        {"source": "aws.sagemaker", "detail": {}},
    ):
        result = orchestrator.handle_state_change(event, run.ctx)
        assert "ignored" in result
    assert run.aws.keys("outputs/") == []

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

import dataclasses
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

# What one record's line in a shard attempt's output is. GARBLED: a line that is not JSON;
# ANSWERED_TWICE (Bedrock): its answer, then a 400 error line for the same recordId.
OK, MISSING, MODEL_ERROR, THROTTLED, REFUSED = "ok", "missing", "model_error", "throttled", "refused"
GARBLED, ANSWERED_TWICE = "garbled", "answered_twice"


@dataclass
class Attempt:
    """How one shard attempt ends: the backend's status and each sent record's output line."""

    status: str = "Completed"
    lines: str | list[str] = OK  # one outcome for all, or one per sent record
    no_output_file: bool = False
    blank_every: int = 0  # SageMaker: a blank line after every this many lines
    extra_at: int | None = None  # SageMaker: a line no record asked for, before this one


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
            _write_outputs(shard, target, sent, outcomes, attempt)
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


def _write_outputs(
    shard: Job, target: Target, sent: list[dict[str, Any]], outcomes: list[str], attempt: Attempt
) -> None:
    lines: list[bytes] = []
    repeated: list[bytes] = []
    for line, outcome in zip(sent, outcomes, strict=True):
        if outcome == MISSING:
            continue
        if outcome == GARBLED:
            lines.append(b"\xff\xfe not a line the service writes\n")
        elif target.kind == "bedrock":
            assert target.entry is not None
            rid, model_input = line["recordId"], line["modelInput"]
            if outcome in (OK, ANSWERED_TWICE):
                lines.append(batch_output_line(rid, model_input, emulate(target.entry, model_input)))
                if outcome == ANSWERED_TWICE:
                    repeated.append(batch_output_line(rid, model_input, error=(400, "scripted repeat")))
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
        lines += repeated  # (after the answer they repeat)
        out = s3.S3Uri.parse(output_uri_for(shard.output, shard.job_id, shard.input))
    else:
        if attempt.extra_at is not None:
            lines.insert(attempt.extra_at, b'{"prediction": {"echo": "no record asked for this"}}\n')
        if attempt.blank_every:
            every = attempt.blank_every
            lines = [line + (b"\n" if (i + 1) % every == 0 else b"") for i, line in enumerate(lines)]
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
    # AWS writes a .out only for a file transformed whole, one line per line sent: a file with
    # any other count of lines is out of step, no line of it is trusted, and the shard is
    # retried whole (SageMaker joins by position: a line lost or added in the middle would
    # otherwise give every later record the next one's answer)
    (
        "Completed with a line short, then Failed on retry",
        {
            (1, 1): Attempt(lines=[OK, OK, OK, MISSING]),
            (1, 2): Attempt("Failed", MISSING, no_output_file=True),
        },
        1,
        {4: "not_processed", 5: "not_processed", 6: "not_processed", 7: "not_processed"},
    ),
    ("a line lost in the middle, then Completed", {(1, 1): Attempt(lines=[OK, MISSING, OK, OK])}, 1, {}),
    ("a line added in the middle, then Completed", {(0, 1): Attempt(extra_at=2)}, 1, {}),
    (
        "out of step twice",
        {(2, 1): Attempt(lines=[OK, MISSING]), (2, 2): Attempt(lines=[MISSING, OK])},
        1,
        {8: "not_processed", 9: "not_processed"},
    ),
    # blank lines answer nothing (AssembleWith=Line may end each response with its own newline)
    ("a blank line after every second line", {(0, 1): Attempt(blank_every=2)}, 0, {}),
    # a line that is no answer, in a file in step, is that record's line alone: it is retried
    ("an unreadable line, then Completed", {(1, 1): Attempt(lines=[OK, OK, GARBLED, OK])}, 1, {}),
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


def test_a_sagemaker_output_out_of_step_is_reported_with_its_line_count(batch: Callable[..., Batch]) -> None:
    # GIVEN a shard whose output loses a line in the middle, twice (its retry too)
    run = batch("sagemaker", {(2, 1): Attempt(lines=[MISSING, OK]), (2, 2): Attempt(lines=[OK, MISSING])})
    orchestrator.submit(run.job_id, run.ctx)

    # THEN no line of either was paired with a record (by position, each would have been the
    # other record's), and the reason says why
    run.merged({8: "not_processed", 9: "not_processed"})
    for line in run.aws.lines(outputs(run.key)[0])[8:]:
        assert "its output held 1 lines for the 2 records sent" in line["error"]["message"]
    shards = {s.job_id.removeprefix(run.job_id): s for s in run.ctx.jobs.children(run.job_id)}
    assert (shards["-s0002"].predictions, shards["-s0002"].errors) == (0, 2)


def test_answers_nested_too_deeply_are_error_lines_not_a_merge_that_never_ends(
    batch: Callable[..., Batch],
) -> None:
    # GIVEN a SageMaker shard whose output answers one record with a prediction nested 100,000
    # levels deep (no parser takes it) and another with one nested 300 deep (it parses, but
    # the results could not be written: collection or the merge failed on every sweep, for ever)
    run = batch("sagemaker", hold=True)
    orchestrator.submit(run.job_id, run.ctx)
    shard = run.ctx.jobs.get(f"{run.job_id}-s0000")
    assert shard is not None
    out = s3.S3Uri.parse(shard.output.rstrip("/") + "/input.jsonl.out")
    lines = s3.get_bytes(out.bucket, out.key).splitlines(keepends=True)
    lines[1] = b'{"prediction": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    lines[2] = b'{"prediction": ' + b"[" * 300 + b"]" * 300 + b"}\n"
    s3.put_bytes(out.bucket, out.key, b"".join(lines))

    # WHEN the events arrive
    _deliver_held(run, lambda events: events)

    # THEN the file is merged: the unreadable line's record was retried (and answered), the
    # other is an error line that says why
    run.merged({2: "invalid_model_output"})
    message = run.aws.lines(outputs(run.key)[0])[2]["error"]["message"]
    assert message == "the model's output is nested more than 200 levels deep"


def test_a_retry_the_parent_index_does_not_show_yet_is_merged_all_the_same(
    batch: Callable[..., Batch], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the jobs table's parent index lags: it never shows a retry while this test runs
    # (it is eventually consistent; a retry queued a moment ago may not be in it)
    children = JobStore.children

    def lagging(store: JobStore, parent: str) -> list[Job]:
        return [job for job in children(store, parent) if "-r" not in job.job_id.rsplit("-s", 1)[-1]]

    monkeypatch.setattr(JobStore, "children", lagging)
    # ... and a shard whose records are retried, its state changes held back
    run = batch("sagemaker", {(0, 1): Attempt("Failed", MISSING, no_output_file=True)}, hold=True)
    orchestrator.submit(run.job_id, run.ctx)

    # WHEN the events arrive, the retry's last
    _deliver_held(run, lambda events: events)

    # THEN the merge waited for the retry, and its records are answered, not "not processed"
    run.merged()
    assert len(run.backend.submitted) == 4


def test_lines_for_records_a_shard_did_not_send_are_not_its_own(batch: Callable[..., Batch]) -> None:
    # GIVEN a Bedrock shard whose output also answers a recordId it never sent (another
    # shard's, say), and repeats a record's answer
    run = batch("bedrock", hold=True)
    orchestrator.submit(run.job_id, run.ctx)
    shard = run.ctx.jobs.get(f"{run.job_id}-s0000")
    assert shard is not None
    out = s3.S3Uri.parse(output_uri_for(shard.output, shard.job_id, shard.input))
    lines = s3.get_bytes(out.bucket, out.key).splitlines(keepends=True)
    stray = json.loads(lines[0])
    stray["recordId"] = "99999999999"
    s3.put_bytes(out.bucket, out.key, b"".join([*lines, lines[0], json.dumps(stray).encode() + b"\n"]))

    # WHEN the events arrive
    _deliver_held(run, lambda events: events)

    # THEN the shard counts the 4 records it sent, and their tokens once, and the file is whole
    shard = run.ctx.jobs.get(f"{run.job_id}-s0000")
    assert shard is not None
    assert (shard.records, shard.predictions, shard.errors) == (4, 4, 0)
    sent_tokens = sum(json.loads(line)["modelOutput"]["inputTextTokenCount"] for line in lines)
    assert sent_tokens > 0
    assert shard.extra["input_tokens"] == sent_tokens
    # ... as does the merge's reading of a shard collected before outcomes were saved
    legacy = dataclasses.replace(shard, extra={k: v for k, v in shard.extra.items() if k != "outcomes_key"})
    parent = _job(run, run.job_id)
    again = orchestrator._collected_outcomes(legacy, orchestrator.target_for(parent, run.ctx))
    assert (again.input_tokens, len(again.lines)) == (sent_tokens, 4)
    run.merged()


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
    # a record answered, then refused in a repeated line: a success is final, either way round
    (
        "a record answered twice, its answer then a 400",
        {(0, 1): Attempt(lines=[ANSWERED_TWICE, OK, OK, OK])},
        0,
        {},
    ),
    ("an unreadable line, then Completed", {(1, 1): Attempt(lines=[OK, GARBLED, OK, OK])}, 1, {}),
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


def test_a_transform_job_that_never_ends_is_stopped_at_the_deadline_and_reported(
    batch: Callable[..., Batch],
) -> None:
    # GIVEN a SageMaker shard whose job runs and runs (Batch Transform has no timeout of its
    # own), one attempt per record
    run = batch("sagemaker", {(1, 1): Attempt("InProgress", MISSING, no_output_file=True)}, attempts=1)
    orchestrator.submit(run.job_id, run.ctx)
    shard_id = f"{run.job_id}-s0001"
    orchestrator.sweep(run.ctx)
    assert run.backend.status(_job(run, shard_id))[0] == "InProgress"  # young: left alone

    # WHEN it has run past SAGEMAKER_TIMEOUT_HOURS (72), and the sweeper looks, twice, while
    # the job takes its time to stop (SageMaker's "Stopping")
    _overdue(run, shard_id)
    stops: list[str] = []
    stop = run.backend.stop
    run.backend.stop = lambda shard: stops.append(shard.job_id)  # type: ignore[method-assign]
    orchestrator.sweep(run.ctx)
    orchestrator.sweep(run.ctx)
    assert stops == [shard_id]  # asked once

    # ... and then it stops
    stop(_job(run, shard_id))
    orchestrator.sweep(run.ctx)

    # THEN its records are reported saying why; the file is merged
    assert run.backend.status(_job(run, shard_id)) == ("Stopped", "")
    stopped = _job(run, shard_id)
    assert stopped.status == "FAILED"
    assert stopped.error == "stopped by sinfer: still running after SAGEMAKER_TIMEOUT_HOURS (72 h)"
    run.merged({4: "not_processed", 5: "not_processed", 6: "not_processed", 7: "not_processed"})
    message = run.aws.lines(outputs(run.key)[0])[4]["error"]["message"]
    assert "Stopped (stopped by sinfer: still running after SAGEMAKER_TIMEOUT_HOURS (72 h))" in message


def test_a_job_asked_to_stop_that_completes_on_its_own_is_not_said_to_be_stopped(
    batch: Callable[..., Batch],
) -> None:
    # GIVEN a SageMaker shard past the deadline that sinfer asks to stop, but which completes
    # on its own (SageMaker answers a ValidationException, swallowed, for a job that ended)
    run = batch("sagemaker", {(0, 1): Attempt("InProgress")})
    orchestrator.submit(run.job_id, run.ctx)
    shard_id = f"{run.job_id}-s0000"
    _overdue(run, shard_id)
    run.backend.stop = lambda shard: None  # type: ignore[method-assign]
    orchestrator.sweep(run.ctx)
    assert _job(run, shard_id).extra["stop_reason"]

    # WHEN it completes, whole
    run.backend._status[shard_id] = ("Completed", "")
    orchestrator.sweep(run.ctx)

    # THEN it is collected as completed, with no "stopped by sinfer" about it
    completed = _job(run, shard_id)
    assert (completed.status, completed.error) == ("COMPLETED", "")
    run.merged()


def _overdue(run: Batch, shard_id: str) -> None:
    """The shard's job submitted long ago: past SAGEMAKER_TIMEOUT_HOURS."""
    stamp = {"submitted_at": "2020-01-01T00:00:00.000000Z"}
    assert run.ctx.jobs.transition(shard_id, "SUBMITTED", allowed_from=("SUBMITTED",), fields=stamp)


def _job(run: Batch, job_id: str) -> Job:
    job = run.ctx.jobs.get(job_id)
    assert job is not None
    return job


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

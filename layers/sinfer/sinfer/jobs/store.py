"""The jobs table (DynamoDB): every status change is a conditional write.

Why conditional writes rather than Powertools' idempotency utility: an S3 file can take
minutes to process and its result is a file, not a return value. What must not happen twice is
(a) two workers processing the same object version at once, and (b) a second "completed"
notification. A claim with a lease (``owner``, ``lease_until``) gives (a) while still letting a
redelivery take over from a worker that died; finishing only if we still own the claim gives
(b). Output keys are deterministic, so a takeover rewrites the same output, never a second one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sinfer.aws.clients import client
from sinfer.config import Settings
from sinfer.jobs.types import TERMINAL, Job, JobStatus

ClaimOutcome = Literal["claimed", "duplicate", "busy"]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _serialize(value: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in value.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def _is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return bool(code == "ConditionalCheckFailedException")


@dataclass(slots=True)
class Claim:
    outcome: ClaimOutcome
    job: Job


class JobStore:
    def __init__(self, table: str, dynamodb: Any = None, ttl_days: int = 90) -> None:
        if not table:
            raise ValueError("JOBS_TABLE is not set")
        self.table = table
        self._ddb = dynamodb
        self.ttl_seconds = ttl_days * 86400

    @classmethod
    def of(cls, config: Settings) -> JobStore:
        """The store the settings name (JOBS_TABLE), its records kept JOB_TTL_DAYS."""
        return cls(config.jobs_table, ttl_days=config.job_ttl_days)

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    def get(self, job_id: str) -> Job | None:
        found = self.ddb.get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
        item = found.get("Item")
        return Job.from_item(_deserialize(item)) if item else None

    def create(self, job: Job) -> bool:
        """Insert a new job; False if the id exists already."""
        stamp = now_iso()
        job.created_at = job.created_at or stamp
        job.updated_at = stamp
        job.expires_at = job.expires_at or int(time.time()) + self.ttl_seconds
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=_serialize(job.to_item()),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except Exception as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def claim(self, job: Job, owner: str, lease_seconds: int) -> Claim:
        """Take the job for processing, unless it is done, routed, or someone holds a live lease."""
        now = int(time.time())
        job.status = "RUNNING"
        job.owner = owner
        job.lease_until = now + lease_seconds
        job.attempts = 1
        if self.create(job):
            return Claim("claimed", job)
        values: dict[str, Any] = {
            ":running": "RUNNING",
            ":owner": owner,
            ":lease": now + lease_seconds,
            ":now": now,
            ":one": 1,
            ":stamp": now_iso(),
            ":pending": "PENDING",
            ":queued": "QUEUED",
            ":input": job.input,
            ":model": job.model,
        }
        names = {"#s": "status", "#o": "owner", "#i": "input", "#m": "model"}
        sets = "SET #s = :running, #o = :owner, lease_until = :lease, updated_at = :stamp, "
        sets += "#i = :input, #m = :model"
        # A job created by POST /jobs knows neither its input's version nor where its results
        # will go until s3_ingest claims it; without them GET /jobs/{id} has no result URL.
        for index, name in enumerate(("output", "summary", "input_version")):
            value = getattr(job, name)
            if value:
                names[f"#x{index}"] = name
                values[f":x{index}"] = value
                sets += f", #x{index} = :x{index}"
        try:
            result = self.ddb.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job.job_id}},
                UpdateExpression=f"{sets} ADD attempts :one",
                ConditionExpression="#s IN (:pending, :queued) OR (#s = :running AND lease_until < :now)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_serialize(values),
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if not _is_condition_failure(exc):
                raise
            current = self.get(job.job_id)
            if current is None:  # deleted in between: try once more from scratch
                return self.claim(job, owner, lease_seconds)
            if current.status == "RUNNING":
                return Claim("busy", current)
            return Claim("duplicate", current)
        return Claim("claimed", Job.from_item(_deserialize(result["Attributes"])))

    def lease(self, job_id: str, status: JobStatus, seconds: int, counter: str) -> int | None:
        """Hold a job that stays in ``status`` for ``seconds``, counting the attempt in ``counter``.

        For work that does not change a job's status until it is done (batch_submit shards a
        ROUTED file for up to 15 minutes): a second submitter (an event and the sweeper, or
        two sweeps) finds the lease live and leaves the file alone, and the count lets the
        caller give up on a file that no attempt finishes. Returns the attempt's number, or
        None when the job is not in ``status`` or another holder's lease is live.
        """
        now = int(time.time())
        try:
            result = self.ddb.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET lease_until = :until, updated_at = :stamp ADD #c :one",
                ConditionExpression=(
                    "#s = :status AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeNames={"#s": "status", "#c": counter},
                ExpressionAttributeValues=_serialize(
                    {":until": now + seconds, ":stamp": now_iso(), ":one": 1, ":status": status, ":now": now}
                ),
                ReturnValues="UPDATED_NEW",
            )
        except Exception as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return int(_deserialize(result["Attributes"])[counter])

    def transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        owner: str | None = None,
        allowed_from: tuple[str, ...] = (),
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Set ``status`` (and fields) if the job is in ``allowed_from`` (and owned by ``owner``)."""
        moved = self.transition_to(job_id, to, owner=owner, allowed_from=allowed_from, fields=fields)
        return moved is not None

    def transition_to(
        self,
        job_id: str,
        to: JobStatus,
        *,
        owner: str | None = None,
        allowed_from: tuple[str, ...] = (),
        fields: dict[str, Any] | None = None,
    ) -> Job | None:
        """:meth:`transition`, returning the job as it now stands (None if it did not move).

        For a caller that goes on to publish the job: the update's own ``ALL_NEW`` answer saves
        reading it back (one DynamoDB call per file on the asynchronous path). :meth:`transition`
        is this, answering only whether the job moved.
        """
        sets = {"updated_at": now_iso(), **(fields or {})}
        names = {"#s": "status"}
        values: dict[str, Any] = {":to": to}
        parts = ["#s = :to"]
        for index, (key, value) in enumerate(sets.items()):
            names[f"#f{index}"] = key
            values[f":f{index}"] = value
            parts.append(f"#f{index} = :f{index}")
        conditions = ["attribute_exists(job_id)"]
        if allowed_from:
            placeholders = []
            for index, status in enumerate(allowed_from):
                values[f":from{index}"] = status
                placeholders.append(f":from{index}")
            conditions.append(f"#s IN ({', '.join(placeholders)})")
        if owner is not None:
            names["#o"] = "owner"
            values[":owner"] = owner
            conditions.append("#o = :owner")
        update = "SET " + ", ".join(parts)
        if to in TERMINAL or to in ("ROUTED", "QUEUED"):
            update += " REMOVE lease_until"
        try:
            result = self.ddb.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_serialize(values),
                ReturnValues="ALL_NEW",  # costs no extra capacity, and saves a reader a GetItem
            )
        except Exception as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return Job.from_item(_deserialize(result["Attributes"]))

    # --- batch: indexes over status/lane and parent ----------------------------------------

    STATUS_INDEX = "status-lane"
    PARENT_INDEX = "parent-job"

    def _query(
        self,
        index: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,  # status and parent are DynamoDB reserved words
            "ExpressionAttributeValues": _serialize(values),
        }
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = max(1, limit - len(items))
            page = self.ddb.query(**kwargs)
            items.extend(_deserialize(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def by_status(self, status: str, lane: str | None = None, limit: int | None = None) -> list[Job]:
        """Jobs in a status (shards and batch files carry a ``lane``; only they are indexed)."""
        if lane is None:
            items = self._query(self.STATUS_INDEX, "#s = :s", {"#s": "status"}, {":s": status}, limit)
        else:
            names, values = {"#s": "status", "#l": "lane"}, {":s": status, ":l": lane}
            items = self._query(self.STATUS_INDEX, "#s = :s AND #l = :l", names, values, limit)
        return [Job.from_item(item) for item in items]

    def children(self, parent: str) -> list[Job]:
        """A batch file's shards, read back consistently (the index itself is eventually consistent)."""
        found = self._query(self.PARENT_INDEX, "#p = :p", {"#p": "parent"}, {":p": parent})
        fresh = [self.get(str(item["job_id"])) for item in found]
        return sorted((c for c in fresh if c is not None), key=lambda c: c.job_id)

"""The security properties template.yaml promises (docs/security.md), checked so they cannot regress.

checkov (``make security``) runs its generic rules; these are the project's own: least privilege
in every IAM statement, TLS only, no public access, encryption at rest, API auth on by default,
a dead-letter queue and an alarm on every failure path, the recursion guard, and a reason for
every checkov suppression. The template is read as written (``load_template`` keeps intrinsics
as data), so every ``!If`` branch is checked, not only the defaults.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sinfer.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")

# Actions that IAM authorizes only against Resource "*" (they have no resource type), each with
# why it is safe here. Any other action on "*" fails test_no_wildcard_resource.
NO_RESOURCE_TYPE_ACTIONS = {
    "ecr:GetAuthorizationToken": (
        "issues a registry login only; which repositories may be pulled is decided by the "
        "PullContainerImage statement, scoped to the SageMaker image repository"
    ),
    "cloudwatch:PutMetricData": (
        "has no resource type; limited instead by a cloudwatch:namespace condition to SageMaker's "
        "transform job namespace"
    ),
    "xray:PutTraceSegments": "has no resource type; Tracing: Active needs it to send the trace",
    "xray:PutTelemetryRecords": "has no resource type; Tracing: Active needs it with the trace",
}

# Roles whose trust policy cannot name a source (aws:SourceArn / aws:SourceAccount).
TRUST_WITHOUT_SOURCE = {
    "ApiGatewayCloudWatchRole": (
        "the account-wide role API Gateway uses to write the logs of every API of the account: "
        "there is no single source to pin it to"
    ),
}
# Services that assume a role only for a resource that names it, where naming it needs
# iam:PassRole on the role: the control is who may pass it, not a condition in the trust policy.
SERVICES_WITHOUT_SOURCE = {
    "lambda.amazonaws.com": (
        "Lambda assumes an execution role only for the functions configured with it, and Lambda "
        "does not document source conditions for execution roles"
    ),
}

# AWS managed policies attached to roles of the template, with why.
MANAGED_POLICIES = {
    "ApiGatewayCloudWatchRole": (
        "AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents for API Gateway's "
        "account logging role"
    ),
}

# Principals allowed to write under a prefix the bucket notifies on (the recursion guard).
INPUT_WRITERS = {
    "PredictApiFunctionRole": (
        "POST /jobs writes the job's input under inputs/<model>/jobs/<id>/: one request, one "
        "object, one job; S3 events never invoke this function"
    ),
}

SECRET_LIKE = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY", re.I)


# --- helpers -------------------------------------------------------------------------------


def _of_type(*types: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in RESOURCES.items() if res["Type"] in types}


def _props(resource: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = resource.get("Properties") or {}
    return props


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _branches(value: Any) -> list[Any]:
    """Every value an intrinsic may take: both branches of each ``Fn::If``, without ``AWS::NoValue``."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        return _branches(yes) + _branches(no)
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def _values(value: Any) -> list[Any]:
    """A Resource/Action/Principal field as the flat list of the values it may hold."""
    out: list[Any] = []
    for item in _as_list(value):
        out.extend(_branches(item))
    return out


def _ref(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` names, or None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _sub_text(value: Any) -> str | None:
    """The text of a string or ``Fn::Sub`` (parameters left as ``${Name}``), or None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    return None


def _function_roles() -> dict[str, str]:
    """Each function's execution role (logical ids)."""
    roles = {}
    for name, res in _of_type(*FUNCTION_TYPES).items():
        role = _ref(_props(res).get("Role"))
        assert role is not None, f"{name}: no Role of this template"
        roles[name] = role
    return roles


def _policy_owner_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, statement) of every identity policy: IAM roles and policies, and SAM functions."""
    for name, res in RESOURCES.items():
        props = _props(res)
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for st in _as_list(policy["PolicyDocument"]["Statement"]):
                    yield name, st
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for st in _as_list(props["PolicyDocument"]["Statement"]):
                yield name, st
        elif res["Type"] == "AWS::Serverless::Function":
            for policy in _as_list(props.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    for st in _as_list(policy["Statement"]):
                        yield name, st


ALLOW_STATEMENTS = [(owner, st) for owner, st in _policy_owner_statements() if st["Effect"] == "Allow"]
ALLOW_PARAMS = [
    pytest.param(owner, st, id=f"{owner}-{st.get('Sid', i)}")
    for i, (owner, st) in enumerate(ALLOW_STATEMENTS)
]

# The actions a Deny on insecure transport must cover, per service (SNS: publishing the payload).
TLS_DENY_ACTIONS = {"s3": {"s3:*"}, "sqs": {"sqs:*"}, "sns": {"sns:*", "sns:Publish"}}

RESOURCE_POLICY_TYPES = {
    "AWS::S3::BucketPolicy": ("Bucket", "s3"),
    "AWS::SQS::QueuePolicy": ("Queues", "sqs"),
    "AWS::SNS::TopicPolicy": ("Topics", "sns"),
}


def _resource_policies() -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    """(policy, resources it is attached to, document) of every bucket/queue/topic policy."""
    for name, res in _of_type(*RESOURCE_POLICY_TYPES).items():
        props = _props(res)
        key, _ = RESOURCE_POLICY_TYPES[res["Type"]]
        targets = [_ref(v) for v in _as_list(props[key])]
        yield name, [t for t in targets if t], props["PolicyDocument"]


def _deny_insecure_transport(document: dict[str, Any], service: str) -> list[dict[str, Any]]:
    return [
        st
        for st in _as_list(document["Statement"])
        if st["Effect"] == "Deny"
        and st.get("Principal") in ("*", {"AWS": "*"})
        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        and set(_as_list(st["Action"])) <= TLS_DENY_ACTIONS[service]
    ]


def _key_pattern(resource: Any) -> str | None:
    """The key pattern of a data bucket object ARN (``${DataBucket.Arn}/<key>``), parameters set
    to their defaults; None for anything else."""
    text = _sub_text(resource)
    if text is None or not text.startswith("${DataBucket.Arn}/"):
        return None
    key = text.removeprefix("${DataBucket.Arn}/")
    return re.sub(r"\$\{(\w+)\}", lambda m: str(PARAMETERS[m.group(1)]["Default"]), key)


def _overlaps(pattern: str, prefix: str) -> bool:
    """Whether an IAM key pattern may match a key under ``prefix``."""
    fixed = pattern.split("*", 1)[0].split("?", 1)[0]
    return fixed.startswith(prefix) or prefix.startswith(fixed)


def _alarms() -> list[dict[str, Any]]:
    """The alarms on one metric each (a metric-math alarm has Metrics instead)."""
    return [_props(r) for r in _of_type("AWS::CloudWatch::Alarm").values() if "Namespace" in _props(r)]


def _alarm_dimension(alarm: dict[str, Any], name: str) -> Any:
    for dim in alarm.get("Dimensions", []):
        if dim["Name"] == name:
            return dim["Value"]
    return None


def _walk(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, path)


def _dead_letter_queues() -> set[str]:
    """Queues that receive what failed: redrive targets, failure destinations, DLQs of rules,
    schedules and functions."""
    queues = set(_of_type("AWS::SQS::Queue"))
    dlq_keys = {"deadLetterTargetArn", "DeadLetterConfig", "OnFailure", "DeadLetterQueue"}
    found = set()
    for path, value in _walk(RESOURCES):
        name = _ref(value)
        if name in queues and dlq_keys & set(path):
            found.add(name)
    return found


# --- IAM -----------------------------------------------------------------------------------


def test_the_template_has_what_these_tests_inspect() -> None:
    # Guards the helpers themselves: a refactor that hid statements would pass every test below.
    owners = {owner for owner, _ in ALLOW_STATEMENTS}
    assert set(_function_roles().values()) <= owners
    assert {"BedrockBatchRole", "SageMakerExecutionRole"} <= owners
    assert len(ALLOW_STATEMENTS) > 40
    assert _of_type("AWS::S3::Bucket")
    assert _of_type("AWS::SQS::Queue")
    assert _dead_letter_queues() == {"IngestDeadLetterQueue", "BatchDeadLetterQueue"}


def test_every_function_runs_with_a_role_written_here() -> None:
    # A role SAM generates carries AWS managed policies on "*" (AWSLambdaBasicExecutionRole: every
    # log group; AWSLambdaSQSQueueExecutionRole: every queue), and SAM's policy templates
    # (S3CrudPolicy...) whole buckets and tables. So each function names a role of this template.
    roles = _function_roles()
    for name, res in _of_type("AWS::Serverless::Function").items():
        assert "Policies" not in _props(res), f"{name}: Policies are ignored next to Role; use its role"
        assert RESOURCES[roles[name]]["Type"] == "AWS::IAM::Role", name
    assert len(set(roles.values())) == len(roles), "each function has a role of its own"
    assert "Role" not in TEMPLATE.get("Globals", {}).get("Function", {})


def test_roles_attach_no_managed_policy_but_the_documented_ones() -> None:
    for name, res in _of_type("AWS::IAM::Role").items():
        props = _props(res)
        if props.get("ManagedPolicyArns"):
            assert name in MANAGED_POLICIES, f"{name} attaches managed policies"
    assert not _of_type("AWS::IAM::User", "AWS::IAM::AccessKey", "AWS::IAM::Group")


def test_functions_write_logs_only_to_their_own_group() -> None:
    roles = _function_roles()
    for name, res in _of_type(*FUNCTION_TYPES).items():
        group = _ref(_props(res)["LoggingConfig"]["LogGroup"])
        for owner, st in ALLOW_STATEMENTS:
            if owner != roles[name]:
                continue
            if any(str(a).startswith("logs:") for a in _values(st["Action"])):
                assert "logs:CreateLogGroup" not in _values(st["Action"]), f"{owner}: the stack makes it"
                assert _values(st["Resource"]) == [{"Fn::GetAtt": [group, "Arn"]}], f"{owner}: {st}"


@pytest.mark.parametrize(("owner", "statement"), ALLOW_PARAMS)
def test_no_wildcard_resource(owner: str, statement: dict[str, Any]) -> None:
    assert "NotResource" not in statement, f"{owner}: NotResource"
    resources = _values(statement["Resource"])
    assert resources, f"{owner} {statement.get('Sid')}: no resource"
    if "*" in resources:
        actions = set(_values(statement["Action"]))
        assert actions <= set(NO_RESOURCE_TYPE_ACTIONS), (
            f"{owner} {statement.get('Sid')}: {sorted(actions - set(NO_RESOURCE_TYPE_ACTIONS))} on "
            "Resource '*'; name the resources (only actions without a resource type may use '*')"
        )
        if "cloudwatch:PutMetricData" in actions:
            assert "cloudwatch:namespace" in str(statement.get("Condition")), f"{owner}: no namespace"


@pytest.mark.parametrize(("owner", "statement"), ALLOW_PARAMS)
def test_no_wildcard_action(owner: str, statement: dict[str, Any]) -> None:
    assert "NotAction" not in statement, f"{owner}: NotAction"
    for action in _values(statement["Action"]):
        assert isinstance(action, str), f"{owner}: action {action!r}"
        assert not set(action) & {"*", "?"}, (
            f"{owner} {statement.get('Sid')}: {action}; list the actions the code calls"
        )


def test_object_permissions_are_scoped_to_prefixes() -> None:
    # Every function and service role reaches only its own prefixes of the data bucket.
    for owner, st in ALLOW_STATEMENTS:
        actions = _values(st["Action"])
        for resource in _values(st["Resource"]):
            key = _key_pattern(resource)
            if key is not None:
                assert not key.startswith("*"), f"{owner} {st.get('Sid')}: the whole bucket ({key})"
        if "s3:ListBucket" in actions:
            prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            assert prefixes, f"{owner} {st.get('Sid')}: ListBucket without an s3:prefix condition"
            for prefix in _values(prefixes):
                text = _sub_text(prefix)
                assert text, f"{owner}: s3:prefix {prefix!r}"
                assert not text.startswith("*"), f"{owner}: lists the whole bucket"


def test_batch_services_read_their_inputs_and_write_only_their_outputs() -> None:
    # Bedrock and SageMaker read shard inputs (SageMaker: the model packages too) and write
    # under each shard's output/: with batch/* they could overwrite the indexes and outcomes
    # the merge trusts, or a model package another job then loads.
    writes = {"s3:PutObject", "s3:AbortMultipartUpload"}
    expected = {
        "BedrockBatchRole": ({"batch/*/input.jsonl"}, {"batch/*/output/*"}),
        "SageMakerExecutionRole": ({"batch/*/input.jsonl", "batch/models/*"}, {"batch/*/output/*"}),
    }
    for owner, (reads, written) in expected.items():
        got_reads: set[str] = set()
        got_writes: set[str] = set()
        for who, st in ALLOW_STATEMENTS:
            if who != owner:
                continue
            actions = set(_values(st["Action"]))
            keys = {k for k in (_key_pattern(r) for r in _values(st["Resource"])) if k is not None}
            if "s3:GetObject" in actions:
                got_reads |= keys
            if actions & writes:
                got_writes |= keys
        assert (got_reads, got_writes) == (reads, written), owner


def test_transform_jobs_start_only_for_sinfers_models_on_the_stacks_instance_type() -> None:
    # CreateTransformJob's condition keys (sagemaker:ModelArn, sagemaker:InstanceTypes) keep a
    # batch function from starting jobs of other models, or on other (GPU) instances; the
    # other transform-job actions have no such keys, so they sit in statements of their own.
    starts = [
        (owner, st)
        for owner, st in ALLOW_STATEMENTS
        if "sagemaker:CreateTransformJob" in _values(st["Action"])
    ]
    assert {owner for owner, _ in starts} == {"BatchSubmitFunctionRole", "BatchCollectFunctionRole"}
    for owner, st in starts:
        assert _values(st["Action"]) == ["sagemaker:CreateTransformJob"], owner
        condition = st["Condition"]
        assert _sub_text(condition["ArnLike"]["sagemaker:ModelArn"]).endswith(":model/sinfer-*"), owner
        assert condition["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"] == {
            "Ref": "SageMakerInstanceType"
        }


def _granted(owner: str, prefix: str) -> set[str]:
    """The actions ``owner`` is allowed that start with ``prefix`` (a service's, say)."""
    return {
        str(action)
        for who, statement in ALLOW_STATEMENTS
        if who == owner
        for action in _values(statement["Action"])
        if str(action).startswith(prefix)
    }


def test_predict_api_may_mark_a_job_failed() -> None:
    # POST /jobs creates the record (PutItem), GET reads it (GetItem), and a job whose "input"
    # copy fails is marked FAILED (JobStore.transition: UpdateItem); without UpdateItem that
    # path is AccessDenied in AWS (moto does not check IAM) and the job stays QUEUED for good.
    granted = _granted("PredictApiFunctionRole", "dynamodb:")
    assert granted == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}


def test_only_the_sweeper_reads_batch_jobs_back() -> None:
    # Job states arrive as EventBridge events at batch_collect, whose sweeper polls the jobs
    # whose events were missed (Backend.status); batch_submit only creates them.
    assert _granted("BatchSubmitFunctionRole", "bedrock:") == {
        "bedrock:CreateModelInvocationJob",
        "bedrock:InvokeModel",
    }
    assert _granted("BatchSubmitFunctionRole", "sagemaker:") == {
        "sagemaker:CreateTransformJob",
        "sagemaker:CreateModel",
        "sagemaker:DescribeModel",
    }
    assert {"bedrock:GetModelInvocationJob"} <= _granted("BatchCollectFunctionRole", "bedrock:")
    # (and stops a transform job past SAGEMAKER_TIMEOUT_HOURS: Batch Transform has no timeout)
    assert {"sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"} <= _granted(
        "BatchCollectFunctionRole", "sagemaker:"
    )


def test_object_versions_are_readable_only_where_events_name_them() -> None:
    # Inputs are read at the version their event (or head) names; the model store is read as it
    # is now (sinfer.model.store names no version), so s3:GetObjectVersion stays off models.
    models = str(PARAMETERS["ModelPrefix"]["Default"])
    for owner, st in ALLOW_STATEMENTS:
        if "s3:GetObjectVersion" not in _values(st["Action"]):
            continue
        for resource in _values(st["Resource"]):
            key = _key_pattern(resource)
            assert key is not None, f"{owner} {st.get('Sid')}: {resource!r}"
            assert not _overlaps(key, models), f"{owner} {st.get('Sid')}: {key}"


def test_pass_role_only_to_its_service() -> None:
    for owner, st in ALLOW_STATEMENTS:
        if "iam:PassRole" in _values(st["Action"]):
            assert all(_ref(r) for r in _values(st["Resource"])), f"{owner}: PassRole on {st['Resource']}"
            assert "iam:PassedToService" in st.get("Condition", {}).get("StringEquals", {}), owner


def test_trust_policies_name_a_service_and_a_source() -> None:
    for name, res in _of_type("AWS::IAM::Role").items():
        for st in _as_list(_props(res)["AssumeRolePolicyDocument"]["Statement"]):
            principal = st["Principal"]
            assert isinstance(principal, dict), f"{name}: {principal!r}"
            assert set(principal) == {"Service"}, f"{name}: only AWS services may assume it"
            if name not in TRUST_WITHOUT_SOURCE and principal["Service"] not in SERVICES_WITHOUT_SOURCE:
                condition = str(st.get("Condition"))
                assert "aws:SourceAccount" in condition or "aws:SourceArn" in condition, (
                    f"{name}: the trust policy must pin the source (confused deputy)"
                )


def test_resource_policies_allow_no_one_publicly() -> None:
    for name, _, document in _resource_policies():
        for st in _as_list(document["Statement"]):
            if st["Effect"] != "Allow":
                continue
            principal = st["Principal"]
            assert isinstance(principal, dict), f"{name}: {principal!r}"
            assert set(principal) == {"Service"}, f"{name}: {principal!r}"
            condition = str(st.get("Condition"))
            assert "aws:SourceArn" in condition or "aws:SourceAccount" in condition, (
                f"{name} {st.get('Sid')}: a service principal must be pinned to its source"
            )


# --- TLS, public access, encryption at rest -------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "service"),
    [("AWS::S3::Bucket", "s3"), ("AWS::SQS::Queue", "sqs"), ("AWS::SNS::Topic", "sns")],
)
def test_every_bucket_queue_and_topic_denies_insecure_transport(resource_type: str, service: str) -> None:
    for name in _of_type(resource_type):
        denies = [
            st
            for _, targets, document in _resource_policies()
            if name in targets
            for st in _deny_insecure_transport(document, service)
        ]
        assert denies, f"{name}: no Deny on aws:SecureTransport false"
        if resource_type == "AWS::S3::Bucket":
            covered = {_sub_text(r) or str(r) for st in denies for r in _values(st["Resource"])}
            assert {f"${{{name}.Arn}}/*"} <= covered, f"{name}: objects not covered ({covered})"
            assert any(r == {"Fn::GetAtt": [name, "Arn"]} for st in denies for r in _values(st["Resource"]))


def test_buckets_block_public_access_and_acls() -> None:
    for name, res in _of_type("AWS::S3::Bucket").items():
        props = _props(res)
        block = props["PublicAccessBlockConfiguration"]
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            assert block.get(flag) is True, f"{name}: {flag} is not true"
        rules = props["OwnershipControls"]["Rules"]
        assert [r["ObjectOwnership"] for r in rules] == ["BucketOwnerEnforced"], f"{name}: ACLs enabled"
        assert "AccessControl" not in props, f"{name}: canned ACL"


def test_encryption_at_rest() -> None:
    for name, res in _of_type("AWS::S3::Bucket").items():
        rules = _props(res)["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        algorithms = {r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
        assert algorithms, name
        assert algorithms <= {"AES256", "aws:kms", "aws:kms:dsse"}, name
    for name, res in _of_type("AWS::SQS::Queue").items():
        props = _props(res)
        assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), name
    for name, res in _of_type("AWS::DynamoDB::Table").items():
        assert _props(res)["SSESpecification"]["SSEEnabled"] is True, name
    for name, res in _of_type("AWS::SNS::Topic").items():
        assert _props(res).get("KmsMasterKeyId"), name


def test_no_secrets_in_function_environments() -> None:
    # The reason CKV_AWS_173 (environment under a customer managed key) is skipped.
    envs = [TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {})]
    envs += [_props(r).get("Environment", {}) for r in _of_type(*FUNCTION_TYPES).values()]
    for env in envs:
        for var in env.get("Variables", {}):
            assert not SECRET_LIKE.search(var), f"{var}: keep secrets in Secrets Manager, not in the env"


def test_logs_keep_no_payloads_and_expire() -> None:
    # The reason CKV_AWS_158 (log groups under a customer managed key) is skipped.
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    # Nor traces: the Tracer stores each handler's response (predictions, presigned URLs)
    assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    for name, res in _of_type(*FUNCTION_TYPES).items():
        own = (_props(res).get("Environment") or {}).get("Variables") or {}
        assert own.get("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "false") == "false", name
    for name, res in _of_type("AWS::Serverless::Api").items():
        for setting in _props(res).get("MethodSettings", []):
            assert setting.get("DataTraceEnabled") is False, f"{name}: full request logging"
    for name, res in _of_type("AWS::Logs::LogGroup").items():
        assert isinstance(_props(res).get("RetentionInDays"), int), f"{name}: kept forever"
    for name, res in _of_type(*FUNCTION_TYPES).items():
        group = _ref(_props(res)["LoggingConfig"]["LogGroup"])
        assert group in _of_type("AWS::Logs::LogGroup"), f"{name}: logs to a group the stack does not own"


# --- API authentication ---------------------------------------------------------------------


def test_api_auth_is_on_by_default() -> None:
    assert PARAMETERS["ApiAuth"]["Default"] == "AWS_IAM"
    assert set(PARAMETERS["ApiAuth"]["AllowedValues"]) == {"AWS_IAM", "NONE"}
    apis = _of_type("AWS::Serverless::Api")
    assert apis
    for name, res in apis.items():
        assert _props(res)["Auth"]["DefaultAuthorizer"] == {"Ref": "ApiAuth"}, name
    # No other way in: no implicit API, HTTP API, raw REST methods or function URLs.
    assert not _of_type("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api", "AWS::ApiGateway::Method")
    assert not _of_type("AWS::Lambda::Url")
    for name, res in _of_type("AWS::Serverless::Function").items():
        assert "FunctionUrlConfig" not in _props(res), name
        for event_name, event in _props(res).get("Events", {}).items():
            if event["Type"] in ("Api", "HttpApi"):
                props = event["Properties"]
                assert _ref(props.get("RestApiId")) in apis, f"{name}.{event_name}: implicit API"
                assert "Auth" not in props, f"{name}.{event_name}: overrides the API's authorizer"


# --- failure paths: dead letters and alarms -------------------------------------------------


def _sqs_events() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(function, its properties, the SQS event's properties) of every SQS event source."""
    return [
        (name, _props(res), event["Properties"])
        for name, res in _of_type("AWS::Serverless::Function").items()
        for event in _props(res).get("Events", {}).values()
        if event["Type"] == "SQS"
    ]


def test_sqs_events_report_which_messages_failed() -> None:
    # s3_ingest answers {"batchItemFailures": [...]}; without ReportBatchItemFailures Lambda
    # ignores that answer and deletes the whole batch: failed messages would never be retried
    # nor reach the DLQ (the tests call the handler directly and could not see it)
    assert _sqs_events()
    for name, _, event in _sqs_events():
        assert "ReportBatchItemFailures" in event.get("FunctionResponseTypes", []), name


def test_queue_visibility_and_the_job_lease_outlast_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # A message must stay invisible while a batch may still be running (Lambda advises six
    # times the timeout plus the batching window), and a file's lease must outlast an
    # invocation, or a redelivery would take over a file still being processed
    from sinfer.config import reset_settings, settings

    default_timeout = TEMPLATE["Globals"]["Function"]["Timeout"]
    for name, function, event in _sqs_events():
        timeout = int(function.get("Timeout", default_timeout))
        queue = _props(RESOURCES[_ref(event["Queue"]) or ""])
        window = int(event.get("MaximumBatchingWindowInSeconds", 0))
        assert int(queue["VisibilityTimeout"]) >= 6 * timeout + window, name
        env = function.get("Environment", {}).get("Variables", {})
        monkeypatch.delenv("JOB_LEASE_SECONDS", raising=False)
        if "JOB_LEASE_SECONDS" in env:
            monkeypatch.setenv("JOB_LEASE_SECONDS", str(env["JOB_LEASE_SECONDS"]))
        reset_settings()
        try:
            assert settings().lease_seconds >= timeout, name
        finally:
            reset_settings()


def test_every_asynchronous_path_ends_in_a_dead_letter_queue() -> None:
    dlqs = _dead_letter_queues()
    for name, res in _of_type("AWS::Serverless::Function").items():
        props = _props(res)
        invoke = props.get("EventInvokeConfig")
        if invoke is not None:
            assert _ref(invoke["DestinationConfig"]["OnFailure"]["Destination"]) in dlqs, name
        for event_name, event in props.get("Events", {}).items():
            ev = event["Properties"]
            if event["Type"] == "SQS":
                queue = _props(RESOURCES[_ref(ev["Queue"]) or ""])
                assert _ref(queue["RedrivePolicy"]["deadLetterTargetArn"]) in dlqs, f"{name}.{event_name}"
            elif event["Type"] in ("EventBridgeRule", "Schedule", "ScheduleV2", "CloudWatchEvent"):
                assert _ref(ev["DeadLetterConfig"]["Arn"]) in dlqs, f"{name}.{event_name}"
    for name, res in _of_type("AWS::Scheduler::Schedule").items():
        assert _ref(_props(res)["Target"]["DeadLetterConfig"]["Arn"]) in dlqs, name


def test_every_queue_has_an_alarm_and_every_dead_letter_queue_alarms_on_one_message() -> None:
    sqs_alarms = [a for a in _alarms() if a["Namespace"] == "AWS/SQS"]
    for name in _of_type("AWS::SQS::Queue"):
        mine = [
            a for a in sqs_alarms if _alarm_dimension(a, "QueueName") == {"Fn::GetAtt": [name, "QueueName"]}
        ]
        assert mine, f"{name}: no alarm"
        if name in _dead_letter_queues():
            assert any(
                a["MetricName"] == "ApproximateNumberOfMessagesVisible"
                and a["Threshold"] <= 1
                and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
                for a in mine
            ), f"{name}: a dead-letter queue must alarm on its first message"


# The function whose code writes each of sinfer's own metrics that an alarm watches.
# Which functions write each of sinfer's own metrics that an alarm or the dashboard reads (the
# functional tests pin each one's emission: test_s3_ingest, test_faults_ingest, test_api_fast,
# test_batch_lifecycle).
# The batch path's run either in batch_submit or batch_collect: submit() may merge a file (a
# Bedrock remainder run at once) and start jobs (a refused one is a failed shard), and the
# sweeper submits files too.
BATCH = {"BatchSubmitFunction", "BatchCollectFunction"}
METRIC_WRITERS = {
    "SweepFailures": {"BatchCollectFunction"},
    "MessagesRetried": {"S3IngestFunction"},
    "MessagesDeferred": {"S3IngestFunction"},
    "FilesCompleted": {"S3IngestFunction", *BATCH},
    "FilesFailed": {"S3IngestFunction", *BATCH},
    "FilesFailedByDeployment": BATCH,
    "FilesRouted": {"S3IngestFunction"},
    "FilesSuperseded": {"S3IngestFunction", *BATCH},
    "ShardsFailed": BATCH,
    "Predictions": {"PredictApiFunction", "S3IngestFunction", *BATCH},
    "InferRequests": {"PredictApiFunction"},
    "RecordErrors": {"S3IngestFunction", *BATCH},
}


def _service_of(function: str) -> str:
    variables = _props(RESOURCES[function]).get("Environment", {}).get("Variables", {})
    return str(variables["POWERTOOLS_SERVICE_NAME"])


def test_each_function_names_its_own_service() -> None:
    # The service is the one dimension of a function's metrics (and a key of its logs): one
    # shared name summed real-time and file Predictions into one series
    functions = list(_of_type("AWS::Serverless::Function"))
    assert "POWERTOOLS_SERVICE_NAME" not in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    services = [_service_of(name) for name in functions]
    assert len(set(services)) == len(functions), services


def test_alarms_on_sinfers_own_metrics_look_where_the_code_writes_them() -> None:
    # Powertools writes EMF under POWERTOOLS_METRICS_NAMESPACE with one dimension, service =
    # the writing function's POWERTOOLS_SERVICE_NAME: an alarm looking elsewhere never fires.
    # A metric-math alarm is checked metric by metric.
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    watched: list[tuple[str, dict[str, Any]]] = []
    for name, res in _of_type("AWS::CloudWatch::Alarm").items():
        props = _props(res)
        if "Metrics" in props:
            watched += [(name, m["MetricStat"]["Metric"]) for m in props["Metrics"] if "MetricStat" in m]
        else:
            watched.append((name, props))
    own = [(name, metric) for name, metric in watched if not str(metric["Namespace"]).startswith("AWS/")]
    assert {name for name, _ in own} >= {
        "BatchSweepFailuresAlarm",
        "IngestMessagesRetriedAlarm",
        "BatchFailuresAlarm",
    }
    for name, metric in own:
        assert metric["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"], name
        [dimension] = metric["Dimensions"]
        assert dimension["Name"] == "service", name
        writers = {_service_of(writer) for writer in METRIC_WRITERS[metric["MetricName"]]}
        assert dimension["Value"] in writers, (name, metric["MetricName"])
    # ... under every service that writes it (a metric written by two functions, read under one,
    # is half seen)
    read = {(m["MetricName"], m["Dimensions"][0]["Value"]) for _, m in own}
    for name in {m for m, _ in read}:
        assert {(name, _service_of(w)) for w in METRIC_WRITERS[name]} <= read, name
    # ... and a math alarm's expression reads every metric it fetches
    for name, res in _of_type("AWS::CloudWatch::Alarm").items():
        queries = _props(res).get("Metrics", [])
        fetched = {q["Id"] for q in queries if "MetricStat" in q}
        [expression] = [q["Expression"] for q in queries if q.get("ReturnData")] or [""]
        assert all(re.search(rf"\b{i}\b", expression) for i in fetched), name


def test_the_dashboard_reads_metrics_where_the_stack_writes_them() -> None:
    # GIVEN the dashboard's body, its ${...} filled as CloudFormation would (names stand in)
    body, variables = _props(RESOURCES["OperationsDashboard"])["DashboardBody"]["Fn::Sub"]

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name.startswith("AWS::") or name in variables or name in RESOURCES, name
        return f"<{name}>"

    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", fill, body))["widgets"]
    metrics = [m for w in widgets for m in w["properties"]["metrics"]]
    assert metrics
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for metric in metrics:
        namespace, name, *dimensions = (part for part in metric if isinstance(part, str))
        pairs = dict(zip(dimensions[::2], dimensions[1::2], strict=True))
        if namespace.startswith("AWS/"):
            continue
        # THEN sinfer's own metrics are read in its namespace, under a service that writes them
        assert namespace == env["POWERTOOLS_METRICS_NAMESPACE"], metric
        assert set(pairs) == {"service"}, metric
        assert pairs["service"] in {_service_of(w) for w in METRIC_WRITERS[name]}, metric
    # AND each alarm's metric is on it
    shown = {tuple(p for p in m if isinstance(p, str))[:2] for m in metrics}
    for res in _of_type("AWS::CloudWatch::Alarm").values():
        props = _props(res)
        for metric in [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q] or [
            props
        ]:
            assert (metric["Namespace"], metric["MetricName"]) in shown, metric["MetricName"]


def test_every_alarm_notifies_the_alarm_topic_when_one_is_given() -> None:
    # An alarm with no actions notifies nobody, and actions added by hand are lost at the next
    # deployment that updates it.
    action = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, res in _of_type("AWS::CloudWatch::Alarm").items():
        assert _props(res).get("AlarmActions") == action, name
        assert _props(res).get("OKActions") == action, name
    assert PARAMETERS["AlarmTopicArn"]["Default"] == ""


def test_every_function_has_an_error_alarm() -> None:
    for name in _of_type(*FUNCTION_TYPES):
        assert any(
            a["Namespace"] == "AWS/Lambda"
            and a["MetricName"] == "Errors"
            and _alarm_dimension(a, "FunctionName") == {"Ref": name}
            and a["Threshold"] <= 1
            for a in _alarms()
        ), f"{name}: no Errors alarm"


def test_functions_are_bounded() -> None:
    # Reserved concurrency (CKV_AWS_115) on every function: a default reservation, and a way out.
    for name, res in _of_type(*FUNCTION_TYPES).items():
        reserved = _props(res).get("ReservedConcurrentExecutions")
        assert reserved is not None, f"{name}: no reserved concurrency"
        for value in _branches(reserved):
            param = _ref(value)
            assert param in PARAMETERS, f"{name}: reserved concurrency must be a parameter"
            if name == "PredictApiFunction":
                # Deployable everywhere by default (a reservation fails in accounts with a small
                # concurrency quota); the API stage's throttling bounds it instead.
                assert _api_is_throttled(), (
                    "PredictApiFunction: neither reserved nor behind a throttled stage"
                )
                continue
            assert int(PARAMETERS[param]["Default"]) > 0, f"{name}: reserves nothing by default"


def _api_is_throttled() -> bool:
    for res in _of_type("AWS::Serverless::Api").values():
        for setting in _props(res).get("MethodSettings", []):
            if setting.get("ThrottlingBurstLimit") and setting.get("ThrottlingRateLimit"):
                return True
    return False


# --- recursion guard --------------------------------------------------------------------------


def test_outputs_can_never_trigger_processing() -> None:
    prefixes = []
    for name, res in _of_type("AWS::S3::Bucket").items():
        notifications = _props(res).get("NotificationConfiguration", {})
        for kind in ("QueueConfigurations", "LambdaConfigurations", "TopicConfigurations"):
            for conf in notifications.get(kind, []):
                rules = conf.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                prefix = [r["Value"] for r in rules if r["Name"].lower() == "prefix"]
                assert prefix, f"{name}: a notification without a prefix fires on every write"
                assert prefix[0], f"{name}: an empty prefix fires on every write"
                prefixes.append(prefix[0])
        assert "EventBridgeConfiguration" not in notifications, f"{name}: EventBridge fires on every write"
    assert prefixes == ["inputs/"]
    for owner, st in ALLOW_STATEMENTS:
        if owner in INPUT_WRITERS or "s3:PutObject" not in _values(st["Action"]):
            continue
        for resource in _values(st["Resource"]):
            key = _key_pattern(resource)
            assert key is not None, f"{owner} {st.get('Sid')}: PutObject on {resource!r}"
            for prefix in prefixes:
                assert not _overlaps(key, prefix), f"{owner} may write {key}, which triggers processing"
    for name, res in _of_type(*FUNCTION_TYPES).items():
        output = _props(res).get("Environment", {}).get("Variables", {}).get("OUTPUT_PREFIX")
        if output is not None:
            assert not any(_overlaps(output, p) for p in prefixes), name


def test_nothing_in_the_stack_can_modify_the_model_store() -> None:
    # Models are published by people (sinfer models publish), never by a function or a batch
    # job: a compromised function cannot swap the model another one loads.
    models = str(PARAMETERS["ModelPrefix"]["Default"])
    writes = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:RestoreObject"}
    for owner, st in ALLOW_STATEMENTS:
        if not writes & set(_values(st["Action"])):
            continue
        for resource in _values(st["Resource"]):
            key = _key_pattern(resource)
            assert key is not None, f"{owner} {st.get('Sid')}: writes {resource!r}"
            assert not _overlaps(key, models), f"{owner} {st.get('Sid')} may write models ({key})"


# --- checkov suppressions -----------------------------------------------------------------------


def _inline_suppressions() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, res in RESOURCES.items():
        for skip in (res.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            out.append((name, skip))
    return out


def test_every_checkov_suppression_has_a_reason_and_is_documented() -> None:
    docs = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text(encoding="utf-8"))
    inline = _inline_suppressions()
    assert inline
    for name, skip in inline:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), f"{name}: {skip}"
        assert len(skip.get("comment", "")) >= 60, f"{name} {skip['id']}: give the reason"
        assert skip["id"] in docs, f"{skip['id']}: not in docs/security.md"
        assert name in docs, f"{name}: its suppression is not in docs/security.md"
    text = (ROOT / ".checkov.yaml").read_text(encoding="utf-8")
    for check in config.get("skip-check", []):
        assert check in docs, f"{check}: not in docs/security.md"
        # Each global skip carries its reason as the comment block just above it.
        above = text.split(f"- {check}", 1)[0].rstrip().splitlines()[-1]
        assert above.strip().startswith("#"), f"{check}: no reason in .checkov.yaml"
    assert not config.get("soft-fail"), "checkov must fail the build on a failed check"


# --- model loading: ONNX only, never pickle -----------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "marshal", "shelve", "torch"}


def _python_files() -> Iterator[Path]:
    for folder in ("layers/sinfer/sinfer", "functions", "containers"):
        yield from (ROOT / folder).rglob("*.py")


def test_no_code_path_can_unpickle() -> None:
    # Models are ONNX graphs and inputs are data (.npy headers are parsed, object arrays refused):
    # nothing the service reads from S3 or a request is ever unpickled.
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
                assert not names & UNSAFE_MODULES, f"{where}:{node.lineno} imports {names & UNSAFE_MODULES}"
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in UNSAFE_MODULES, f"{where}:{node.lineno}"
            elif isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                assert func not in ("np.load", "numpy.load", "eval", "exec"), f"{where}:{node.lineno} {func}"
                for kw in node.keywords:
                    if kw.arg == "allow_pickle":
                        assert isinstance(kw.value, ast.Constant), f"{where}:{node.lineno} allow_pickle"
                        assert kw.value.value is False, f"{where}:{node.lineno} allow_pickle"


def test_sessions_are_built_in_one_place() -> None:
    builders = sorted(
        str(path.relative_to(ROOT))
        for path in _python_files()
        if "InferenceSession(" in path.read_text(encoding="utf-8")
    )
    assert builders == ["layers/sinfer/sinfer/model/session.py"]

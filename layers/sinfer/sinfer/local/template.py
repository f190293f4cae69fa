"""Read a function's configuration from a SAM template, as ``sam local`` does, without CloudFormation.

``sinfer invoke`` and ``sinfer serve`` take the handler, code folder, memory, timeout and
environment from template.yaml, so what runs locally is what the template deploys. Only the
part of the template a local invocation needs is evaluated, lazily: ``Globals.Function`` merged
into the function's ``Properties`` with SAM's rules (maps merge, lists concatenate, scalars
override), then intrinsic functions resolved the way the SAM CLI resolves them offline:

* ``!Ref`` of a parameter is its ``Default``; of a pseudo parameter, a fixed local value
  (account ``123456789012``, stack ``local``, region from ``AWS_REGION``/``AWS_DEFAULT_REGION``);
  of a resource, its logical id (so ``!Sub s3://${DataBucket}/`` gives ``s3://DataBucket/``).
* ``!GetAtt Resource.Arn`` is a plausible ARN built from the logical id; other attributes are
  ``Resource.Attribute``.
* The environment variables whose values name a resource of the stack that way are listed
  (``FunctionSpec.placeholders``): such a value is a stand-in, not the resource's real name,
  and ``sinfer invoke`` and ``sinfer serve`` leave them empty unless told otherwise (see
  :mod:`sinfer.local.lambda_runtime`).
* ``!Sub``, ``!Join``, ``!Select``, ``!Split``, ``!If`` (with the template's Conditions),
  ``!FindInMap``, ``!Base64`` and ``Fn::ToJsonString`` are evaluated.
* Anything else (``!ImportValue``, ``!GetAZs``...) cannot be known offline and becomes ``None``;
  an environment variable holding it is set to ``""``, as the SAM CLI does. ``--env-vars``
  overrides such values.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sinfer.local.apigw import ACCOUNT_ID

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
DEFAULT_MEMORY_MB = 128  # Lambda's defaults when neither the function nor Globals say
DEFAULT_TIMEOUT_S = 3
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """The template cannot be read, or does not describe a function that can run locally."""


class FunctionNotFoundError(TemplateError):
    """No function of that logical id in the template."""


class _NoValue:
    """``AWS::NoValue``: removes the key or list item that holds it."""


NO_VALUE = _NoValue()


# --- YAML with CloudFormation's short-form tags -------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref X`` into ``{"Ref": "X"}``, ``!Sub s`` into ``{"Fn::Sub": s}``, ..."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation/SAM template (YAML or JSON) as plain dicts, intrinsics in long form."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(
            f"template {path} not found; run in the project folder or pass --template"
        ) from None
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    try:
        doc = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader plus CloudFormation tags only
    except yaml.YAMLError as exc:
        raise TemplateError(f"template {path} is not valid YAML: {_one_line(str(exc))}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise TemplateError(f"template {path} has no Resources section")
    return doc


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- intrinsic functions ------------------------------------------------------------------


def pseudo_parameters() -> dict[str, Any]:
    """The local stand-ins for CloudFormation's pseudo parameters (the SAM CLI's values)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return {
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "local",
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/local/{uuid.UUID(int=0)}",
        "AWS::NotificationARNs": [],
        "AWS::NoValue": NO_VALUE,
    }


class Resolver:
    """Evaluates intrinsic functions against parameter defaults and local stand-ins."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> None:
        self._resources: Mapping[str, Any] = template.get("Resources") or {}
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self._mappings: Mapping[str, Any] = template.get("Mappings") or {}
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        self._symbols: dict[str, Any] = pseudo_parameters()
        for name, spec in declared.items():
            self._symbols[name] = spec.get("Default") if isinstance(spec, dict) else None
        self._symbols.update(parameters or {})
        # The resources named by what was resolved since the caller last cleared it (a stand-in
        # value: the logical id, or an ARN made from it).
        self.named_resources: list[str] = []

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(str(arg))
        handler = getattr(self, "_fn_" + key[4:].lower(), None)
        if handler is None:
            return None  # not knowable offline (ImportValue, GetAZs, Transform...)
        return handler(arg)

    def ref(self, name: str) -> Any:
        if name in self._symbols:
            return self._symbols[name]
        logical_id = name.split(".", 1)[0]  # SAM's generated refs, such as MyApi.Stage
        if logical_id in self._resources:
            self.named_resources.append(logical_id)
            return name
        raise TemplateError(f"!Ref {name}: no parameter or resource of that name in the template")

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self._resources.get(logical_id)
        if not isinstance(resource, dict):
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: no resource of that name in the template")
        self.named_resources.append(logical_id)
        if attribute != "Arn":
            return f"{logical_id}.{attribute}"
        service = str(resource.get("Type", "AWS::Unknown::Resource")).split("::")[1].lower()
        if service == "serverless":
            service = "lambda"
        return f"arn:aws:{service}:{self._symbols['AWS::Region']}:{ACCOUNT_ID}:{logical_id}"

    def _fn_getatt(self, arg: Any) -> str:
        logical_id, attribute = self.resolve(arg)
        return self.get_att(str(logical_id), str(attribute))

    def _fn_sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] in self._resources and name not in self._symbols:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            return "" if value is None or value is NO_VALUE else str(value)

        return _SUB_VARIABLE.sub(substitute, str(text))

    def _fn_join(self, arg: Any) -> str:
        delimiter, items = self.resolve(arg)
        return str(delimiter).join("" if item is None else str(item) for item in items)

    def _fn_select(self, arg: Any) -> Any:
        index, items = self.resolve(arg)
        return items[int(index)]

    def _fn_split(self, arg: Any) -> list[str]:
        delimiter, text = self.resolve(arg)
        return str(text).split(str(delimiter))

    def _fn_findinmap(self, arg: Any) -> Any:
        mapping, top, second = self.resolve(arg)
        try:
            return self._mappings[mapping][top][second]
        except (KeyError, TypeError):
            raise TemplateError(f"!FindInMap [{mapping}, {top}, {second}]: not in the Mappings") from None

    def _fn_base64(self, arg: Any) -> str:
        return base64.b64encode(str(self.resolve(arg)).encode("utf-8")).decode("ascii")

    def _fn_tojsonstring(self, arg: Any) -> str:
        return json.dumps(self.resolve(arg), separators=(",", ":"))

    def _fn_if(self, arg: Any) -> Any:
        condition, when_true, when_false = arg
        return self.resolve(when_true if self.condition(str(condition)) else when_false)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            raise TemplateError(f"condition {name!r} is not declared in the template's Conditions")
        return self._truth(self._conditions[name])

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._truth(arg[0])
            if key == "Fn::And":
                return all(self._truth(item) for item in arg)
            if key == "Fn::Or":
                return any(self._truth(item) for item in arg)
        return bool(self.resolve(value))


# --- the function --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What a local invocation needs to know about one function, intrinsics resolved."""

    logical_id: str
    function_name: str
    code_dir: Path
    handler: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...] = ()
    # Variable -> the stack resources its value names by a stand-in (logical id, made-up ARN).
    placeholders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key == "Ref" or str(key).startswith("Fn::")


def merge_globals(globals_: Any, local: Any) -> Any:
    """SAM's Globals rule: maps merge key by key, lists concatenate, anything else is overridden."""
    both_maps = isinstance(globals_, dict) and isinstance(local, dict)
    if both_maps and not (_is_intrinsic(globals_) or _is_intrinsic(local)):
        merged = dict(globals_)
        for key, value in local.items():
            merged[key] = merge_globals(globals_[key], value) if key in globals_ else value
        return merged
    if isinstance(globals_, list) and isinstance(local, list):
        return globals_ + local
    return local


def env_value(value: Any) -> str:
    """An environment variable's text; unresolvable values become "" as in the SAM CLI."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return ""


class Template:
    """A parsed template and the folder its relative paths (CodeUri, ContentUri) start from."""

    def __init__(self, doc: dict[str, Any], path: Path, parameters: Mapping[str, Any] | None = None) -> None:
        self.doc = doc
        self.path = path
        self.base_dir = path.resolve().parent
        self.resolver = Resolver(doc, parameters)

    @classmethod
    def load(cls, path: Path | str, parameters: Mapping[str, Any] | None = None) -> Template:
        path = Path(path)
        return cls(load_template(path), path, parameters)

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.doc["Resources"]
        return resources

    def function_ids(self) -> list[str]:
        return [
            logical_id
            for logical_id, resource in self.resources.items()
            if isinstance(resource, dict) and resource.get("Type") in FUNCTION_TYPES
        ]

    def function(self, logical_id: str | None = None) -> FunctionSpec:
        """One function's spec; ``None`` picks the template's only function, as ``sam local invoke`` does."""
        if logical_id is None:
            ids = self.function_ids()
            if len(ids) != 1:
                raise FunctionNotFoundError(
                    f"{self.path} has {len(ids)} functions ({', '.join(ids) or 'none'}); name the one to run"
                )
            logical_id = ids[0]
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict) or resource.get("Type") not in FUNCTION_TYPES:
            known = ", ".join(self.function_ids()) or "none"
            raise FunctionNotFoundError(f"no function {logical_id!r} in {self.path} (functions: {known})")
        globals_: Any = {}
        if resource["Type"] == "AWS::Serverless::Function":  # Globals are a SAM feature
            globals_ = (self.doc.get("Globals") or {}).get("Function") or {}
        merged = merge_globals(globals_, resource.get("Properties") or {})
        props = self.resolver.resolve(merged)
        if props.get("PackageType") == "Image":
            raise TemplateError(f"{logical_id} is a container image function; only zip functions run locally")
        env = (props.get("Environment") or {}).get("Variables") or {}
        name = props.get("FunctionName")
        return FunctionSpec(
            logical_id=logical_id,
            function_name=name if isinstance(name, str) and name else logical_id,
            code_dir=self._code_dir(logical_id, props),
            handler=self._handler(logical_id, props),
            memory_mb=_int(props.get("MemorySize"), DEFAULT_MEMORY_MB, f"{logical_id} MemorySize"),
            timeout_s=_int(props.get("Timeout"), DEFAULT_TIMEOUT_S, f"{logical_id} Timeout"),
            environment={str(k): env_value(v) for k, v in env.items()},
            layer_dirs=tuple(self._layer_dirs(props.get("Layers") or [])),
            placeholders=self._placeholders(merged),
        )

    def _placeholders(self, props: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """Each environment variable whose value names a stack resource, and the resources."""
        environment = props.get("Environment")
        variables = environment.get("Variables") if isinstance(environment, dict) else None
        if not isinstance(variables, dict):
            return {}
        found: dict[str, tuple[str, ...]] = {}
        for name, value in variables.items():
            self.resolver.named_resources.clear()
            self.resolver.resolve(value)
            if self.resolver.named_resources:
                found[str(name)] = tuple(dict.fromkeys(self.resolver.named_resources))
        return found

    def _code_dir(self, logical_id: str, props: Mapping[str, Any]) -> Path:
        uri = props.get("CodeUri", props.get("Code"))
        if uri is None:
            uri = "."  # SAM's default: the template's own folder
        if not isinstance(uri, str):
            raise TemplateError(f"{logical_id}: CodeUri must be a local folder to run locally, not {uri!r}")
        folder = self.base_dir / uri
        if not folder.is_dir():
            raise TemplateError(f"{logical_id}: CodeUri folder {folder} does not exist")
        return folder

    @staticmethod
    def _handler(logical_id: str, props: Mapping[str, Any]) -> str:
        handler = props.get("Handler")
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must look like module.function, got {handler!r}")
        return handler

    def _layer_dirs(self, layers: list[Any]) -> list[Path]:
        """Local folders of layers defined in this template; published layer ARNs are skipped."""
        folders = []
        for layer in layers:
            resource = self.resources.get(layer) if isinstance(layer, str) else None
            if isinstance(resource, dict) and resource.get("Type") in LAYER_TYPES:
                props = resource.get("Properties") or {}
                uri = props.get("ContentUri", props.get("Content"))
                if isinstance(uri, str) and (self.base_dir / uri).is_dir():
                    folders.append(self.base_dir / uri)
        return folders


def _int(value: Any, default: int, what: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateError(f"{what} must be a number, got {value!r}") from None

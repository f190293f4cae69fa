"""``sinfer models list|describe|publish|pull``: look after the model stores.

A store is a folder or an ``s3://`` prefix laid out as ``<name>/<version>/model.onnx`` plus an
optional ``model.json`` (or a ``model.json`` alone for a Bedrock entry); see "The model
package" in the README.

``publish`` is the only way models should enter a store: it loads the graph with the manifest
first (an invalid ONNX file or a manifest that does not fit the graph never reaches a store),
pins the file's sha256 in model.json, and never replaces a version unless told to. It writes
so that no reader sees half a version: a folder store gets the version under a hidden name
and renamed into place; an S3 store gets model.json before model.onnx, since a reader that
finds the pinned manifest without the model fails and retries, whereas one that found the model
without its manifest would load it with the wrong preprocessing and keep it.

``pull`` is how an edge device takes model updates: the version lands in ``DIR/<name>/<version>/``
only after the sha256 pinned in model.json matched the downloaded bytes; a mismatch deletes the
download and exits 1. ``sinfer predict`` then reads ``DIR`` as its model store.

The store helpers at the top (``--model-store``, ``NAME[:VERSION]``, loading a model with
one-line errors) are shared with ``sinfer predict``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sinfer.cli import CliError, Commands, help_text
from sinfer.cli.progress import fail, warn

if TYPE_CHECKING:
    from sinfer.inference.model import LoadedModel
    from sinfer.model.store import ModelStore, S3ModelStore

DEFAULT_STORE = "models"


# --- shared with sinfer predict --------------------------------------------------------------


def add_store_option(parser: argparse.ArgumentParser, flag: str = "--model-store") -> None:
    parser.add_argument(
        flag,
        dest="model_store",
        metavar="DIR|s3://...",
        help=f"model store: a folder or an s3:// prefix (default: $MODEL_STORE, else ./{DEFAULT_STORE})",
    )


def store_uri(value: str | None, flag: str = "--model-store") -> str:
    """``--model-store`` (or ``flag``), else ``$MODEL_STORE``, else ./models; a folder must exist."""
    text = value or os.environ.get("MODEL_STORE") or DEFAULT_STORE
    if text.startswith("s3://"):
        return text
    folder = Path(text).expanduser()
    if not folder.is_dir():
        hint = "" if value else f" (pass {flag} DIR|s3://... or set MODEL_STORE)"
        raise CliError(f"model store folder {text} does not exist{hint}")
    return str(folder.resolve())


def open_model_store(value: str | None, flag: str = "--model-store") -> ModelStore:
    from sinfer.model.store import open_store

    return open_store(store_uri(value, flag))


def parse_ref(text: str, version: str | None = None) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:VERSION`` (plus an optional ``--version``) → (name, version)."""
    from sinfer.errors import ModelNotFoundError
    from sinfer.model.store import check_name

    name, sep, inline = text.partition(":")
    if sep and version is not None and inline != version:
        raise CliError(f"{text} names version {inline!r} but --version says {version!r}")
    version = inline if sep else version
    try:
        check_name("model name", name)
        if version is not None:
            check_name("version", version)
    except ModelNotFoundError as exc:
        raise CliError(exc.message) from None
    return name, version


@contextmanager
def store_access(uri: str) -> Iterator[None]:
    """Unknown models and unreachable stores as one line (exit 2) instead of a traceback."""
    from sinfer.errors import ModelNotFoundError

    try:
        yield
    except ModelNotFoundError as exc:
        raise CliError(f"{exc.message} (store: {uri})") from None
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        raise CliError(f"cannot read {uri}: {exc}") from None


def _is_aws_error(exc: BaseException) -> bool:
    # botocore's errors (ClientError, NoCredentialsError, EndpointConnectionError...) share no
    # base class worth importing botocore for when the store is a folder.
    return type(exc).__module__.startswith(("botocore", "boto3", "s3transfer"))


def names_a_path(text: str) -> bool:
    """Whether a MODEL argument is a path (a folder or an .onnx file), not a store name."""
    return "/" in text or os.sep in text or text.endswith(".onnx")


def model_at(text: str) -> LoadedModel:
    """The model a path names, loaded as a store's would be, without a store.

    A folder holding ``model.onnx`` (and perhaps ``model.json``), or a store layout of one
    model, is read as the SageMaker container reads ``/opt/ml/model``; a bare ``.onnx`` file
    is served with ``<name>.json`` beside it as its manifest, if there is one (``model.json``
    for ``model.onnx``). Unknown paths and names that cannot be models are CliError.
    """
    from sinfer.errors import ModelNotFoundError
    from sinfer.sagemaker.server import ModelDirStore, ModelLocation, locate_model

    path = Path(text).expanduser()
    try:
        if path.is_dir():
            location = locate_model(path)
        elif path.is_file() and path.suffix == ".onnx":
            folder = path.resolve().parent
            manifest = "model.json" if path.name == "model.onnx" else f"{path.stem}.json"
            name = check_model_name(path.stem if path.name != "model.onnx" else folder.parent.name or "model")
            location = ModelLocation(ModelDirStore(folder, name, "1", path.name, manifest), name, "1")
        else:
            raise CliError(f"no model at {text}: expected a folder holding model.onnx, or an .onnx file")
    except ModelNotFoundError as exc:
        raise CliError(exc.message) from None
    return location.load()


def check_model_name(text: str) -> str:
    """``text`` if a store would take it as a model name, else "model"."""
    from sinfer.errors import ModelNotFoundError
    from sinfer.model.store import check_name

    try:
        return check_name("model name", text)
    except ModelNotFoundError:
        return "model"


def load_model(store: ModelStore, name: str, version: str | None) -> LoadedModel:
    """The model, through the registry (the same loading, caching and sha256 check as Lambda).

    Unknown model → CliError; a model that exists but cannot load raises SinferError.
    """
    from sinfer.inference.registry import ModelRegistry

    with store_access(store.uri):
        return ModelRegistry(store).get(name, version)


# --- the command ---------------------------------------------------------------------------


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "models",
        help="list, describe, publish and pull models in a store (folder or s3://)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="models, versions, kind (onnx/bedrock), sha256 pinned?")
    add_store_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=run_list)

    describe = actions.add_parser("describe", help="inputs, outputs, labels, post-processing of a model")
    describe.add_argument("model", metavar="NAME[:VERSION]", help="the model (default version: the highest)")
    add_store_option(describe)
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.set_defaults(run=run_describe)

    publish = actions.add_parser(
        "publish", help="validate a model and copy it into a store, pinning its sha256 in model.json"
    )
    publish.add_argument(
        "source", metavar="DIR", help="a folder with model.onnx (+ model.json), or a .onnx file"
    )
    publish.add_argument(
        "--to", required=True, metavar="STORE", help="the store: a folder (created if needed) or s3://..."
    )
    publish.add_argument(
        "model", metavar="NAME[:VERSION]", help="name in the store (default version: the highest + 1)"
    )
    publish.add_argument("--force", action="store_true", help="replace the version if it exists")
    publish.set_defaults(run=run_publish)

    pull = actions.add_parser(
        "pull", help="download a version into DIR/<name>/<version>/, verifying its pinned sha256"
    )
    pull.add_argument("model", metavar="NAME[:VERSION]", help="the model (default version: the highest)")
    add_store_option(pull, "--from")
    pull.add_argument(
        "--to",
        default=DEFAULT_STORE,
        metavar="DIR",
        help=f"local store folder to download into (default: ./{DEFAULT_STORE})",
    )
    pull.add_argument("--force", action="store_true", help="replace a local copy that differs")
    pull.set_defaults(run=run_pull)


# --- list ----------------------------------------------------------------------------------


def _kind(manifest: dict[str, Any] | None) -> str:
    from sinfer.batch.bedrock.entry import is_bedrock_manifest

    return "bedrock" if manifest is not None and is_bedrock_manifest(manifest) else "onnx"


def _pinned(manifest: dict[str, Any] | None) -> str | None:
    sha = (manifest or {}).get("sha256")
    return sha if isinstance(sha, str) else None


def run_list(args: argparse.Namespace) -> int:
    from sinfer.model.store import version_sort_key

    store = open_model_store(args.model_store)
    rows: list[dict[str, Any]] = []
    with store_access(store.uri):
        for name in store.list_models():
            for version in sorted(store.list_versions(name), key=version_sort_key):
                manifest = _manifest_or_none(store, name, version)
                kind = _kind(manifest)
                rows.append(
                    {
                        "name": name,
                        "version": version,
                        "kind": kind,
                        "sha256": _pinned(manifest),
                        "description": str((manifest or {}).get("description", "")),
                    }
                )
    if args.json:
        print(json.dumps({"store": store.uri, "models": rows}, indent=2))
        return 0
    if not rows:
        print(f"no models in {store.uri}", file=sys.stderr)
        return 0
    table = [("NAME", "VERSION", "KIND", "SHA256")]
    for row in rows:
        sha = row["sha256"]
        pinned = f"pinned {sha[:12]}" if sha else ("-" if row["kind"] == "bedrock" else "not pinned")
        table.append((row["name"], row["version"], row["kind"], pinned))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0


def _manifest_or_none(store: ModelStore, name: str, version: str) -> dict[str, Any] | None:
    """A listing shows a version whose model.json is broken rather than stopping at it."""
    from sinfer.errors import ManifestError

    try:
        return store.read_manifest(name, version)
    except ManifestError as exc:
        warn("models", exc.message)
        return None


# --- describe ------------------------------------------------------------------------------


def run_describe(args: argparse.Namespace) -> int:
    from sinfer.inference.registry import ModelRegistry

    name, version = parse_ref(args.model)
    store = open_model_store(args.model_store)
    registry = ModelRegistry(store)
    with store_access(store.uri):  # (a model that cannot load: main's one line, exit 1)
        resolved, manifest = registry.manifest(name, version)
        if _kind(manifest) == "bedrock":
            doc = _describe_bedrock(name, resolved, manifest or {})
        else:
            doc = _describe_onnx(registry.get(name, resolved))
    doc["store"] = store.uri
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(_describe_text(doc))
    return 0


def _describe_onnx(model: LoadedModel) -> dict[str, Any]:
    manifest = model.manifest
    post = manifest.postprocess
    inputs = []
    for spec in model.inputs:
        entry: dict[str, Any] = {
            "name": spec.name,
            "datatype": spec.v2_datatype,
            "shape": spec.v2_shape(),
            "type": spec.describe(),
            "kind": spec.decl.kind,
        }
        if spec.decl.columns is not None:
            entry["columns"] = list(spec.decl.columns)
        if spec.decl.image is not None:
            image = spec.decl.image
            entry["image"] = {
                "color_mode": image.color_mode,
                "resize": list(image.resize) if image.resize else None,
                "crop": list(image.crop) if image.crop else None,
                "layout": image.layout,
            }
        inputs.append(entry)
    outputs = [
        {"name": spec.name, "datatype": spec.v2_datatype, "shape": spec.v2_shape(), "type": spec.describe()}
        if spec.is_tensor
        else {"name": spec.name, "type": spec.onnx_type}
        for spec in model.outputs
    ]
    return {
        "name": model.name,
        "version": model.version,
        "kind": "onnx",
        "description": manifest.description,
        "sha256": manifest.sha256,
        "inputs": inputs,
        "outputs": outputs,
        "labels": list(manifest.labels) if manifest.labels else None,
        "postprocess": (
            {"kind": post.kind, "output": post.output, "k": post.k if post.kind == "top_k" else None}
            if post
            else None
        ),
        "max_batch_size": model.max_batch,
        "batch_backend": manifest.batch_backend,
    }


def _describe_bedrock(name: str, version: str, manifest: dict[str, Any]) -> dict[str, Any]:
    from sinfer.batch.bedrock.entry import BedrockEntry

    entry = BedrockEntry.from_manifest(manifest, f"{name}:{version} model.json")
    return {
        "name": name,
        "version": version,
        "kind": "bedrock",
        "description": str(manifest.get("description", "")),
        "model_id": entry.model_id,
        "family": entry.family,
        "input_field": entry.input_field,
        "output": entry.output,
        "output_path": ".".join(str(step) for step in entry.output_path) if entry.output_path else None,
        "request": entry.request,
        "template": entry.template,
        "batch_backend": str(manifest.get("batch_backend") or "bedrock"),
    }


def _describe_text(doc: dict[str, Any]) -> str:
    lines = [f"{doc['name']}:{doc['version']}  ({doc['kind']}, {doc['store']})"]
    if doc.get("description"):
        lines.append(f"  {doc['description']}")
    if doc["kind"] == "bedrock":
        lines += [
            f"  model id     {doc['model_id']} (family {doc['family']})",
            f"  input        the record's {doc['input_field']!r} field (or a plain string record)",
            f"  output       {doc['output']}",
            f"  backend      {doc['batch_backend']} (batch jobs only: upload to inputs/ or POST /jobs)",
        ]
        return "\n".join(lines)
    sha = doc["sha256"]
    lines.append(f"  sha256       {sha + ' (pinned)' if sha else 'not pinned'}")
    lines.append("  inputs")
    for spec in doc["inputs"]:
        detail = spec["kind"]
        if "columns" in spec:
            shown = ", ".join(spec["columns"][:4]) + (", ..." if len(spec["columns"]) > 4 else "")
            detail += f", {len(spec['columns'])} columns: {shown}"
        if "image" in spec:
            image = spec["image"]
            size = f", resize {image['resize'][0]}x{image['resize'][1]}" if image["resize"] else ""
            detail += f" ({image['color_mode']}{size}, layout {image['layout']})"
        lines.append(f"    {spec['name']}  {spec['type']}  {detail}")
    lines.append("  outputs")
    lines += [f"    {spec['name']}  {spec['type']}" for spec in doc["outputs"]]
    if doc["labels"]:
        labels = doc["labels"]
        lines.append(f"  labels       {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}")
    if doc["postprocess"]:
        post = doc["postprocess"]
        k = f" (k={post['k']})" if post["k"] else ""
        lines.append(f"  postprocess  {post['kind']}{k} on {post['output'] or 'the last float output'}")
    backend = doc["batch_backend"] or "the deployment's default"
    lines.append(f"  batch        up to {doc['max_batch_size']} per run; large jobs: {backend}")
    return "\n".join(lines)


# --- publish -------------------------------------------------------------------------------


def _source_files(source: Path) -> tuple[Path | None, Path | None]:
    """(model.onnx, model.json) of a publish source; either may be absent."""
    if source.is_file():
        if source.suffix.lower() != ".onnx":
            raise CliError(f"{source} is not a .onnx file; pass the model's folder or its .onnx file")
        manifest = source.with_name("model.json") if source.name == "model.onnx" else None
        return source, manifest if manifest is not None and manifest.is_file() else None
    if not source.is_dir():
        raise CliError(f"{source} does not exist")
    onnx, manifest = source / "model.onnx", source / "model.json"
    return (onnx if onnx.is_file() else None), (manifest if manifest.is_file() else None)


def _read_json(path: Path) -> dict[str, Any]:
    """The source's model.json, read as the store reads one (a refusal says why, as a CLI error)."""
    from sinfer.errors import ManifestError
    from sinfer.model.store import read_manifest_file

    try:
        return read_manifest_file(path) or {}
    except ManifestError as exc:
        raise CliError(exc.message) from None


def _validate_onnx(onnx: Path, raw: dict[str, Any], name: str, version: str) -> None:
    """Load the graph with its manifest, as serving will; raise CliError saying what is wrong."""
    from sinfer.errors import SinferError
    from sinfer.inference.model import LoadedModel
    from sinfer.model.manifest import Manifest
    from sinfer.model.session import create_session
    from sinfer.model.store import ModelFiles

    try:
        session = create_session(onnx, threads=1)
    except Exception as exc:  # onnxruntime's errors share no importable base class
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        raise CliError(f"{onnx} is not a valid ONNX model (onnxruntime cannot load it): {reason}") from None
    try:
        manifest = Manifest.from_dict(raw, source="model.json")
        LoadedModel(ModelFiles(name, version, onnx, manifest), session)
    except SinferError as exc:
        raise CliError(exc.message) from None


def _next_version(versions: list[str]) -> str:
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def run_publish(args: argparse.Namespace) -> int:
    from sinfer.model.store import LocalModelStore, S3ModelStore, sha256_file

    name, version = parse_ref(args.model)
    onnx, manifest_path = _source_files(Path(args.source))
    raw = _read_json(manifest_path) if manifest_path is not None else {}
    bedrock = _kind(raw) == "bedrock"
    if bedrock and onnx is not None:
        raise CliError(f"{args.source}: a bedrock model.json describes a hosted model; remove model.onnx")
    if not bedrock and onnx is None:
        raise CliError(f"{args.source} has no model.onnx (a model.json alone must be a bedrock entry)")
    store = _publish_store(args.to)
    with store_access(store.uri):
        existing = store.list_versions(name)
    version = version or _next_version(existing)
    if version in existing and not args.force:
        raise CliError(f"{name}:{version} already exists in {store.uri}; publish another version or --force")
    document = {"name": name, "version": version}
    document.update((k, v) for k, v in raw.items() if k not in ("name", "version", "sha256"))
    if bedrock:
        from sinfer.batch.bedrock.entry import BedrockEntry
        from sinfer.errors import ManifestError

        try:
            BedrockEntry.from_manifest(document, str(manifest_path))
        except ManifestError as exc:
            raise CliError(exc.message) from None
    else:
        assert onnx is not None
        _validate_onnx(onnx, document, name, version)
        sha = sha256_file(onnx)
        pinned = raw.get("sha256")
        if isinstance(pinned, str) and pinned.lower() != sha:
            warn("models", f"{manifest_path} pinned sha256 {pinned}; pinning the file published: {sha}")
        document["sha256"] = sha
    body = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    with store_access(store.uri):
        if isinstance(store, S3ModelStore):
            where = _publish_to_s3(store, name, version, onnx, body)
        else:
            assert isinstance(store, LocalModelStore)
            where = _publish_to_folder(store.root / name / version, onnx, body)
    pin = f"sha256 {document['sha256']}" if "sha256" in document else "bedrock entry"
    print(f"published {name}:{version} to {where} ({pin})")
    return 0


def _publish_store(uri: str) -> ModelStore:
    from sinfer.model.store import open_store

    if not uri.startswith("s3://") and Path(uri).expanduser().is_file():
        raise CliError(f"--to {uri} is a file, not a store folder")
    return open_store(uri)


def _publish_to_folder(final: Path, onnx: Path | None, manifest: bytes) -> str:
    staging = _hidden_sibling(final, "publish")
    try:
        staging.mkdir(parents=True)
        if onnx is not None:
            shutil.copyfile(onnx, staging / "model.onnx")
        (staging / "model.json").write_bytes(manifest)
        _swap_into_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(final)


def _publish_to_s3(store: S3ModelStore, name: str, version: str, onnx: Path | None, manifest: bytes) -> str:
    from sinfer.aws import s3
    from sinfer.aws.clients import client

    prefix = f"{store.prefix}{name}/{version}/"
    # model.json first: see the module docstring.
    s3.put_bytes(store.bucket, prefix + "model.json", manifest, "application/json")
    if onnx is not None:
        # upload_file: a managed, multipart upload; a model may be larger than memory allows.
        client("s3").upload_file(
            str(onnx),
            store.bucket,
            prefix + "model.onnx",
            ExtraArgs={"ContentType": "application/octet-stream"},
        )
    return f"s3://{store.bucket}/{prefix}"


def _hidden_sibling(final: Path, purpose: str) -> Path:
    # A leading dot is not a valid model or version name, so stores never list it.
    return final.with_name(f".{final.name}.{purpose}-{uuid.uuid4().hex[:8]}")


def _swap_into_place(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``, replacing a previous ``final`` (moved aside first)."""
    if not final.exists():
        staging.rename(final)
        return
    old = _hidden_sibling(final, "old")
    final.rename(old)
    try:
        staging.rename(final)
    except BaseException:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --- pull ----------------------------------------------------------------------------------


def run_pull(args: argparse.Namespace) -> int:
    name, version = parse_ref(args.model)
    source = open_model_store(args.model_store, "--from")
    dest_root = Path(args.to).expanduser()
    if dest_root.exists() and not dest_root.is_dir():
        raise CliError(f"--to {args.to} is a file, not a folder")
    if not source.uri.startswith("s3://") and Path(source.uri) == dest_root.resolve():
        raise CliError(f"--from and --to are the same store ({source.uri}); pass --from STORE")
    with store_access(source.uri):
        version = source.resolve_version(name, version)
        manifest_bytes = _manifest_bytes(source, name, version)
    try:
        manifest = _parse_manifest(manifest_bytes)
    except ValueError as exc:
        return fail("models", f"{name}:{version} in {source.uri}: model.json {exc}")
    pinned = _pinned(manifest)
    bedrock = _kind(manifest) == "bedrock"
    final = dest_root / name / version
    if _up_to_date(final, manifest_bytes, pinned, bedrock):
        print(f"{name}:{version} is up to date in {final}")
        return 0
    if final.exists() and not args.force:
        raise CliError(f"{final} exists and differs from {source.uri}; pass --force to replace it")
    staging = _hidden_sibling(final, "pull")
    # The folders made for this pull, outermost first: a pull that fails leaves none behind.
    made = [folder for folder in (dest_root, dest_root / name) if not folder.exists()]
    try:
        staging.mkdir(parents=True)
        if manifest_bytes is not None:
            (staging / "model.json").write_bytes(manifest_bytes)
        if not bedrock:
            with store_access(source.uri):
                actual = _download_onnx(source, name, version, staging / "model.onnx")
            if pinned is None:
                warn(
                    "models",
                    f"{name}:{version} pins no sha256 in model.json, so the download cannot be verified "
                    f"(its sha256 is {actual}); `sinfer models publish` pins one",
                )
            elif actual != pinned.lower():
                return fail(
                    "models",
                    f"{name}:{version} from {source.uri} is not the model its model.json pins: model.onnx "
                    f"sha256 is {actual}, expected {pinned}; the download was deleted",
                )
        _swap_into_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # (not empty: the pull succeeded)
                folder.rmdir()
    what = "bedrock entry" if bedrock else f"sha256 {pinned} verified" if pinned else "not verified"
    print(f"pulled {name}:{version} into {final} ({what})")
    return 0


def _parse_manifest(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("is not a JSON object")
    pinned = raw.get("sha256")
    if pinned is not None and not (isinstance(pinned, str) and len(pinned) == 64):
        raise ValueError("has a sha256 that is not 64 hex characters")
    return raw


def _manifest_bytes(store: ModelStore, name: str, version: str) -> bytes | None:
    """model.json exactly as stored (re-serialising would change what its readers hash)."""
    from sinfer.model.store import LocalModelStore, S3ModelStore

    if isinstance(store, S3ModelStore):
        from sinfer.aws import s3

        try:
            return s3.get_bytes(store.bucket, f"{store.prefix}{name}/{version}/model.json")
        except s3.S3NotFoundError:
            return None
    assert isinstance(store, LocalModelStore)
    path = store.root / name / version / "model.json"
    return path.read_bytes() if path.is_file() else None


def _download_onnx(store: ModelStore, name: str, version: str, dest: Path) -> str:
    """Copy model.onnx to ``dest``; the sha256 of the bytes written (computed while copying)."""
    import hashlib

    from sinfer.errors import ModelNotFoundError
    from sinfer.model.store import LocalModelStore, S3ModelStore

    if isinstance(store, S3ModelStore):
        from sinfer.aws import s3

        try:
            return s3.download_verified(store.bucket, f"{store.prefix}{name}/{version}/model.onnx", dest)
        except s3.S3NotFoundError:
            raise ModelNotFoundError(f"{name}:{version} has no model.onnx") from None
    assert isinstance(store, LocalModelStore)
    path = store.root / name / version / "model.onnx"
    if not path.is_file():
        raise ModelNotFoundError(f"{name}:{version} has no model.onnx")
    digest = hashlib.sha256()
    with path.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(1024 * 1024):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _up_to_date(final: Path, manifest: bytes | None, pinned: str | None, bedrock: bool) -> bool:
    """The local copy has the same model.json and a model.onnx that matches its pinned sha256."""
    from sinfer.model.store import sha256_file

    if not final.is_dir():
        return False
    local_manifest = final / "model.json"
    same_manifest = local_manifest.read_bytes() == manifest if local_manifest.is_file() else manifest is None
    if not same_manifest:
        return False
    if bedrock:
        return True
    onnx = final / "model.onnx"
    return pinned is not None and onnx.is_file() and sha256_file(onnx) == pinned.lower()

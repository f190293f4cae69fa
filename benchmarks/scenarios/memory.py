"""Scenario 4: peak memory while streaming 100 MB and 1 GB inputs: flat, and under 512 MB.

Each case runs in a fresh child process, which reports its own peak RSS (VmHWM):

* **s3_ingest** (100 MB and 1 GB): the real handler, invoked with an SQS event for an object
  in moto. moto runs as a server in its own process (``python -m moto.server`` on loopback), so
  what it stores is not counted: the child's peak is the handler's own, reading the object as
  a stream over HTTP and writing its output with multipart uploads, as against S3.
* **streaming pipeline, local file** (100 MB and 1 GB): the same ``process_records``
  loop (read → predict → result writer) on a local file with ``FileJsonlWriter``: the
  handler's loop without the AWS clients.
* **text path** (digits JSONL, 20 MB): the same loop over JSON Lines, to show the text
  readers stream too.

The 100 MB / 1 GB inputs are ``.npy`` files of wide rows (4,096 float32 values, 16 KB per
record) for a model generated here (``ReduceMean`` over the row). Wide rows keep the record
count, and so the pipeline's per-record Python cost, low enough for a gigabyte to stream
within the bench's time budget; they exercise the same reader, micro-batching, overlap and
writer as any other format, with 4 MB micro-batches.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import MODELS, Check, Config, Row, ScenarioResult, peak_rss_mb, run_child
from benchmarks.scenarios._shared import MotoServer, MotoStack, digits_rows, jsonl_bytes, repeat_to_size

NAME = "memory"
TITLE = "4. Peak memory, streaming (100 MB vs 1 GB)"
MB = 10**6
FLAT_TARGET = 1.2
RSS_LIMIT_MB = 512
WIDTH = 4096
MODEL = "wide"


def make_model(store: Path) -> Path:
    """``<store>/wide/1/model.onnx``: float32[N, 4096] → its mean, float32[N, 1]."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])
    y = helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 1])
    node = helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1], keepdims=1)
    graph = helper.make_graph([node], "wide", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = store / MODEL / "1" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))
    return store


def make_npy(path: Path, size: int) -> int:
    """An .npy of float32 rows of WIDTH values, at least ``size`` bytes; returns its size."""
    import numpy as np

    rows = max(1, size // (WIDTH * 4))
    block = np.random.default_rng(0).random((256, WIDTH), dtype=np.float32)
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": "<f4", "fortran_order": False, "shape": (rows, WIDTH)}
        )
        for start in range(0, rows, len(block)):
            out.write(block[: min(len(block), rows - start)].tobytes())
    return path.stat().st_size


def make_jsonl(path: Path, size: int) -> int:
    block = jsonl_bytes(digits_rows(10_000))
    with path.open("wb") as out:
        for chunk in repeat_to_size(block, size):
            out.write(chunk)
    return path.stat().st_size


# --- child side (python -m benchmarks.scenarios.memory MODE MODEL INPUT OUTPUT) -------------


def child_core(model_name: str, input_path: str, output_path: str) -> dict[str, Any]:
    from benchmarks.scenarios._shared import run_pipeline
    from sinfer.inference.registry import default_registry
    from sinfer.records import FileJsonlWriter

    model = default_registry().get(model_name)
    start = time.perf_counter()
    with open(input_path, "rb") as stream:
        counts = run_pipeline(model, stream, Path(input_path).name, FileJsonlWriter(output_path))
    return {"counts": counts, "seconds": time.perf_counter() - start}


def child_s3(key: str, size: int) -> dict[str, Any]:
    """s3_ingest for one object of the moto server the environment points at."""
    import boto3

    from benchmarks.common import silenced_stdout
    from benchmarks.scenarios._shared import ingest, output_lines

    with silenced_stdout():
        start = time.perf_counter()
        response = ingest([(key, size)])
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "output_lines": output_lines(boto3.client("s3"), key),
        "response": response[0],
    }


def child_main(argv: list[str]) -> int:
    mode, model_name, input_path = argv[0], argv[1], argv[2]
    if mode == "core":
        report = child_core(model_name, input_path, argv[3])
    else:
        report = child_s3(f"inputs/{model_name}/{Path(input_path).name}", Path(input_path).stat().st_size)
    report["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write("\n" + json.dumps(report) + "\n")
    return 0


# --- parent side -------------------------------------------------------------------------


def _tiny(config: Config, inputs: dict[str, tuple[str, Path, Path]]) -> None:
    """The same child code, in-process (the unit test): local loop, then s3_ingest on moto."""
    from benchmarks.scenarios._shared import bench_env

    for name, (model, model_store, path) in inputs.items():
        with bench_env({"MODEL_STORE": str(model_store)}):
            report = child_core(model, str(path), str(config.workdir / f"out-{name}.jsonl"))
        assert report["counts"]["errors"] == 0, report
    model, model_store, path = inputs["small"]
    with MotoStack({"MODEL_STORE": str(model_store)}) as stack:
        key = f"inputs/{model}/{path.name}"
        report = child_s3(key, stack.upload(key, path))
    assert report["output_lines"] > 0, report


def _spawn(mode: str, model: str, env: dict[str, str], input_path: Path, output_path: Path) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.scenarios.memory",
        mode,
        model,
        str(input_path),
        str(output_path),
    ]
    child = run_child(argv, env=env)
    report: dict[str, Any] = child.json()
    report["wall_s"] = child.seconds
    report["input_mb"] = input_path.stat().st_size / MB
    return report


def run(config: Config) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    small, large, text = config.pick(
        (100 * MB, 1000 * MB, 20 * MB), (20 * MB, 200 * MB, 4 * MB), (200_000, 800_000, 50_000)
    )
    store = make_model(config.workdir / "store")
    inputs = {
        "small": (MODEL, store, config.workdir / "memory-small.npy"),
        "large": (MODEL, store, config.workdir / "memory-large.npy"),
        "text": ("digits", MODELS, config.workdir / "memory-text.jsonl"),
    }
    make_npy(inputs["small"][2], small)
    make_npy(inputs["large"][2], large)
    make_jsonl(inputs["text"][2], text)
    if config.tiny:
        _tiny(config, inputs)
        result.notes.append("tiny mode: everything ran in-process (moto in-process); no peak RSS measured")
        return result
    with MotoServer() as server, MotoStack({"MODEL_STORE": str(store)}, endpoint=server.endpoint) as stack:
        for which in ("small", "large"):
            path = inputs[which][2]
            stack.upload(f"inputs/{MODEL}/{path.name}", path)
        envs = {
            "store": {"MODEL_STORE": str(store)},
            "models": {"MODEL_STORE": str(MODELS)},
            "s3": stack.environment(),
        }
        jobs = {
            "s3 small": ("s3", "small", "s3"),
            "s3 large": ("s3", "large", "s3"),
            "core small": ("core", "small", "store"),
            "core large": ("core", "large", "store"),
            "core text": ("core", "text", "models"),
        }
        # The children run side by side: peak RSS is per process, so sharing the 2 cores
        # changes only wall time; the two 1 GB runs set the scenario's duration.
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = {
                label: pool.submit(
                    _spawn,
                    mode,
                    inputs[which][0],
                    envs[env],
                    inputs[which][2],
                    config.workdir / f"out-{mode}-{which}.jsonl",
                )
                for label, (mode, which, env) in jobs.items()
            }
            reports = {label: future.result() for label, future in futures.items()}
    for _, _, path in inputs.values():
        path.unlink(missing_ok=True)
    for label in ("s3 small", "s3 large"):
        expected = reports[label.replace("s3", "core")]["counts"]["records"]
        assert reports[label]["output_lines"] == expected, (label, reports[label])
    core_small, core_large, core_text = reports["core small"], reports["core large"], reports["core text"]
    s3_small, s3_large = reports["s3 small"], reports["s3 large"]
    flat = s3_large["peak_rss_mb"] / s3_small["peak_rss_mb"]
    flat_core = core_large["peak_rss_mb"] / core_small["peak_rss_mb"]
    small_mb, large_mb = core_small["input_mb"], core_large["input_mb"]
    ls, ll = f"{small_mb:.0f} MB", f"{large_mb:.0f} MB"
    result.rows += [
        Row(f"s3_ingest (moto server), .npy {ls}", "peak RSS", s3_small["peak_rss_mb"], "MB"),
        Row(
            f"s3_ingest (moto server), .npy {ll}",
            "peak RSS",
            s3_large["peak_rss_mb"],
            "MB",
            ls,
            s3_small["peak_rss_mb"],
            flat,
        ),
        Row(f"s3_ingest (moto server), .npy {ll}", "input MB/s", large_mb / s3_large["seconds"], "MB/s"),
        Row(f"streaming pipeline, local .npy {ls}", "peak RSS", core_small["peak_rss_mb"], "MB"),
        Row(
            f"streaming pipeline, local .npy {ll}",
            "peak RSS",
            core_large["peak_rss_mb"],
            "MB",
            ls,
            core_small["peak_rss_mb"],
            flat_core,
        ),
        Row(f"streaming pipeline, local .npy {ll}", "input MB/s", large_mb / core_large["seconds"], "MB/s"),
        Row(
            f"streaming pipeline, digits JSONL {core_text['input_mb']:.0f} MB",
            "peak RSS",
            core_text["peak_rss_mb"],
            "MB",
        ),
    ]
    result.checks += [
        Check(f"s3_ingest peak RSS {ll} / {ls} (flat)", flat, f"<= {FLAT_TARGET}", flat <= FLAT_TARGET, "x"),
        Check(
            f"s3_ingest peak RSS {ll}",
            s3_large["peak_rss_mb"],
            f"< {RSS_LIMIT_MB} MB",
            s3_large["peak_rss_mb"] < RSS_LIMIT_MB,
            "MB",
        ),
        Check(
            f"local pipeline peak RSS {ll} / {ls} (flat)",
            flat_core,
            f"<= {FLAT_TARGET}",
            flat_core <= FLAT_TARGET,
            "x",
        ),
    ]
    result.details = reports
    result.notes.append(
        "moto runs as a separate server process, so its copies of the objects are not in the measured peak"
    )
    return result


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))

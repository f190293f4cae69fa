"""Scenario 1: warm real-time latency of predict_api, in-process, against two baselines.

Each case invokes the real handler with a REST API event whose body is base64-encoded as API
Gateway sends it. A successful prediction takes predict_api's fast path (sinfer.api.fast:
validation, the model, the EMF metric, no Powertools); errors and other routes take the full
Powertools path. It is compared with, on the same inputs:

* **bare** — ``session.run`` on the very arrays the handler ends up feeding: the limit;
* **naive** — a handler anyone would write first: take the body from the event,
  ``json.loads``, ``np.array``, ``session.run``, ``json.dumps``, return a proxy response (for
  PNG instances: base64-decode and Pillow-decode each image). No validation, no logging, no
  metrics.

All cases of one input run interleaved, so drift hits them alike. For one tabular instance the
handler's time is also split into layers (model path, fast path HTTP work) by timing
``LoadedModel.predict`` alone in the same interleaving, and, for comparison, the same request
through the full Powertools path (decorators + resolver, what every request took before the
fast path; split into resolver and decorators) and the Powertools floor (that wiring around a
route that does nothing). It also times both handlers with their run taken out (the model's
binding, or the naive handler's session, returns the outputs it would have): the difference is
what ``session.run`` costs inside each handler, where the Python around it has the CPU's
caches in between runs, against a loop of bare runs that keeps them warm.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from benchmarks.common import (
    Check,
    Config,
    Row,
    ScenarioResult,
    interleaved,
    percentile,
    silenced_stdout,
    time_calls,
)
from benchmarks.scenarios._shared import (
    bench_env,
    breast_cancer_rows,
    digits_images,
    digits_rows,
    lambda_context,
    png_bytes,
)

NAME = "latency"
TITLE = "1. Warm real-time latency (predict_api in-process, REST event)"
OVERHEAD_TARGET_US = 25.0
LAYERED_CASE = "tabular breast_cancer x1"
LAMBDA_RUNTIME_API = "127.0.0.1:9001"  # (never called: the handler is invoked in-process)


def _cases(config: Config) -> list[dict[str, Any]]:
    sizes = (1,) if config.tiny else (1, 32)
    rows = breast_cancer_rows(32)
    pixels = digits_rows(32)
    images = [png_bytes(image) for image in digits_images(32)]
    cases: list[dict[str, Any]] = []
    for n in sizes:
        cases.append({"case": f"tabular breast_cancer x{n}", "model": "breast_cancer", "instances": rows[:n]})
        cases.append(
            {"case": f"image digits raw 64 values x{n}", "model": "digits", "instances": pixels[:n].tolist()}
        )
        cases.append(
            {
                "case": f"image digits PNG b64 x{n}",
                "model": "digits",
                "instances": [{"b64": base64.b64encode(png).decode()} for png in images[:n]],
                "png": True,
            }
        )
    return cases


def _naive_handler(session: Any, input_name: str, png: bool, scale: float) -> Any:
    """json.loads → np.array → session.run → json.dumps, straight from the event."""
    import numpy as np

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        raw = event["body"]
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw
        instances = json.loads(body)["instances"]
        if png:
            from PIL import Image

            x = np.stack(
                [
                    np.asarray(
                        Image.open(io.BytesIO(base64.b64decode(i["b64"]))).convert("L"), np.float32
                    ).reshape(-1)
                    * np.float32(scale)
                    for i in instances
                ]
            )
        else:
            x = np.array(instances, dtype=np.float32)
        outputs = session.run(None, {input_name: x})
        predictions = [o.tolist() if isinstance(o, np.ndarray) else o for o in outputs]
        return {"statusCode": 200, "body": json.dumps({"predictions": predictions})}

    return handler


class _Answers:
    """A session whose ``run`` returns given outputs: a handler with its run taken out."""

    def __init__(self, outputs: list[Any]) -> None:
        self.outputs = outputs

    def run(self, names: Any, feeds: Any) -> list[Any]:
        return self.outputs


def _powertools_floor(event: dict[str, Any], context: Any) -> Any:
    """The same decorators and resolver as predict_api, around a route that does no work.

    What any handler built this way pays before doing anything: it bounds from below what the
    real handler's overhead over a bare ``session.run`` can be.
    """
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit

    from sinfer.api.routes import router
    from sinfer.observability import logger, metrics, tracer

    app = APIGatewayRestResolver()

    @app.post("/v1/models/<name>:predict")
    def predict(name: str) -> Response[str]:
        metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
        return Response(status_code=200, content_type="application/json", body='{"predictions":[0]}')

    # The same routes to match against (Powertools tries them in order), doing nothing.
    for key in router._routes:
        rule, methods = key[0], list(key[1])
        if rule != "/v1/models/<name>:predict":
            app.route(rule, method=methods)(lambda **_: Response(status_code=200, body=""))

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return lambda: handler(event, context)


def _timed_cases(spec: dict[str, Any], context: Any) -> dict[str, Any]:
    """The callables to time for one input: handler, baselines, and for one tabular instance
    the handler's layers and the Powertools floor. Checks every one answers correctly first."""
    import numpy as np

    from functions.predict_api.app import _powertools_handler, lambda_handler
    from sinfer.api.app import resolve
    from sinfer.api.fast import handle
    from sinfer.inference.registry import default_registry
    from sinfer.local.apigw import rest_event
    from sinfer.observability import metrics

    model = default_registry().get(spec["model"])
    session, input_name = model.session, model.input_names[0]
    instances = spec["instances"]
    body = json.dumps({"instances": instances}).encode()
    event = rest_event(
        "POST", f"/v1/models/{spec['model']}:predict", body, {"Content-Type": "application/json"}
    )
    # The arrays the handler feeds, built by the handler's own preprocessing.
    feeds = {input_name: np.stack([model.to_sample(i, "bench")[input_name] for i in instances])}
    scale = model.inputs[0].decl.image.scale if model.inputs[0].decl.image else 1.0
    naive = _naive_handler(session, input_name, bool(spec.get("png")), scale)

    response = lambda_handler(event, context)
    assert response["statusCode"] == 200, response
    assert handle(event) == response, "the handler did not take the fast path"
    assert len(json.loads(response["body"])["predictions"]) == len(instances)
    assert naive(event)["statusCode"] == 200

    cases = {
        "bare": lambda: session.run(None, feeds),
        "naive": lambda: naive(event),
        "handler": lambda: lambda_handler(event, context),
    }
    if spec["case"] == LAYERED_CASE:

        def resolve_only() -> None:
            resolve(event, context)
            metrics.clear_metrics()  # the decorator would flush them

        powertools = _powertools_handler()
        assert powertools(event, context)["statusCode"] == 200
        # Each handler with its run replaced by the outputs it would return: what the run costs
        # inside that handler (its time with the run less its time without), against bare.
        fetched = model._session_run(feeds, model._fetch)
        naive_outputs = session.run(None, feeds)
        no_run_naive = _naive_handler(_Answers(naive_outputs), input_name, False, scale)

        real_run = model._binding_run

        def handler_without_run() -> Any:
            model._binding_run = lambda names, given, options: fetched
            try:
                return lambda_handler(event, context)
            finally:
                model._binding_run = real_run

        assert handler_without_run() == response
        assert no_run_naive(event) == naive(event)
        cases["handler, run removed"] = handler_without_run
        cases["naive, run removed"] = lambda: no_run_naive(event)

        cases["model.predict"] = lambda: model.predict(instances)
        cases["powertools path"] = lambda: powertools(event, context)
        cases["resolve (no decorators)"] = resolve_only
        cases["powertools floor"] = _powertools_floor(event, context)
    return {"cases": cases, "request_bytes": len(body)}


def run(config: Config) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    rounds, per_round, budget_s = config.pick((12, 250, 6.0), (6, 120, 2.0), (1, 5, 0.5))
    # As Lambda's Python runtime runs the handler: its stdout flushed after every write, and
    # the variable that runtime sets for itself (sinfer then writes its EMF line to fd 1).
    with bench_env({"AWS_LAMBDA_RUNTIME_API": LAMBDA_RUNTIME_API}):
        context = lambda_context()
        for spec in _cases(config):
            with silenced_stdout(as_in_lambda=True):
                prepared = _timed_cases(spec, context)
                cases = prepared["cases"]
                # Same number of calls per case; fewer for slow inputs (32 PNGs take ~10 ms), so
                # every input gets about the same wall time.
                one_round = sum(min(time_calls(fn, 5)) for fn in cases.values()) / 1e9
                calls = max(5, min(per_round, int(budget_s / rounds / max(one_round, 1e-9))))
                samples_ns = interleaved(cases, rounds=rounds, per_round=calls)
            us = {name: [s / 1000 for s in values] for name, values in samples_ns.items()}
            p50 = {name: percentile(values, 50) for name, values in us.items()}
            p99 = {name: percentile(values, 99) for name, values in us.items()}
            overhead = p50["handler"] - p50["bare"]
            vs_naive = p50["handler"] / p50["naive"]
            result.rows += [
                Row(
                    spec["case"],
                    "handler p50",
                    p50["handler"],
                    "us",
                    "bare",
                    p50["bare"],
                    p50["handler"] / p50["bare"],
                ),
                Row(
                    spec["case"],
                    "handler p99",
                    p99["handler"],
                    "us",
                    "bare",
                    p99["bare"],
                    p99["handler"] / p99["bare"],
                ),
                Row(spec["case"], "overhead p50", overhead, "us"),
                Row(spec["case"], "vs naive p50", p50["handler"], "us", "naive", p50["naive"], vs_naive),
            ]
            result.details[spec["case"]] = {
                "p50_us": {k: round(v, 1) for k, v in p50.items()},
                "p99_us": {k: round(v, 1) for k, v in p99.items()},
                "overhead_over_bare_p50_us": round(overhead, 1),
                "handler_over_naive_p50": round(vs_naive, 3),
                "samples_per_case": len(us["handler"]),
                "request_bytes": prepared["request_bytes"],
            }
            if spec["case"] == LAYERED_CASE:
                layers = {
                    "session.run (bare)": p50["bare"],
                    "model path (to_sample, run, postprocess)": p50["model.predict"] - p50["bare"],
                    "fast path HTTP (route, body, JSON, checks, metric, response)": (
                        p50["handler"] - p50["model.predict"]
                    ),
                }
                powertools_layers = {
                    "full Powertools path (decorators + resolver)": p50["powertools path"],
                    "of which routing + HTTP over the model path": (
                        p50["resolve (no decorators)"] - p50["model.predict"]
                    ),
                    "of which Powertools decorators (Logger, Tracer, Metrics flush)": (
                        p50["powertools path"] - p50["resolve (no decorators)"]
                    ),
                }
                result.details["powertools path p50 us"] = {
                    k: round(v, 1) for k, v in powertools_layers.items()
                }
                result.rows.append(
                    Row(
                        "full Powertools path (errors, other routes)",
                        "p50",
                        p50["powertools path"],
                        "us",
                        "bare",
                        p50["bare"],
                        p50["powertools path"] / p50["bare"],
                    )
                )
                result.details["powertools floor p50 us"] = round(p50["powertools floor"], 1)
                result.rows.append(
                    Row("powertools floor (same wiring, no work)", "p50", p50["powertools floor"], "us")
                )
                result.details["tabular x1 breakdown p50 us"] = {k: round(v, 1) for k, v in layers.items()}
                run_inside = {
                    "bare session.run (a loop of runs alone)": p50["bare"],
                    "the run inside sinfer's handler": p50["handler"] - p50["handler, run removed"],
                    "the run inside the naive handler": p50["naive"] - p50["naive, run removed"],
                    "sinfer's handler, run removed": p50["handler, run removed"],
                    "the naive handler, run removed": p50["naive, run removed"],
                }
                result.details["tabular x1 run inside each handler p50 us"] = {
                    k: round(v, 1) for k, v in run_inside.items()
                }
                result.checks.append(
                    Check(
                        "median overhead over bare session.run, 1 tabular instance",
                        overhead,
                        f"<= {OVERHEAD_TARGET_US:.0f} us",
                        overhead <= OVERHEAD_TARGET_US,
                        "us",
                    )
                )
            result.checks.append(
                Check(f"handler / naive p50, {spec['case']}", vs_naive, "< 1", vs_naive < 1, "x")
            )
    breakdown = result.details.get("tabular x1 breakdown p50 us")
    if breakdown:
        result.notes.append(
            "tabular x1 p50 breakdown (us): " + "; ".join(f"{k} {v}" for k, v in breakdown.items())
        )
        result.notes.append(
            "tabular x1, what session.run costs inside each handler (its time less its time with "
            "the run's outputs given), p50 (us): "
            + "; ".join(
                f"{k} {v}" for k, v in result.details["tabular x1 run inside each handler p50 us"].items()
            )
        )
        result.notes.append(
            "the same request through the full Powertools path, p50 (us): "
            + "; ".join(f"{k} {v}" for k, v in result.details["powertools path p50 us"].items())
        )
        result.notes.append(
            f"Powertools floor (Logger + Tracer + Metrics decorators and the REST resolver around a "
            f"route that does nothing): {result.details['powertools floor p50 us']} us p50"
        )
    return result

"""A loaded model: preprocess → ``session.run`` → postprocess, for any valid ONNX graph.

Batching: instances are stacked along the batch axis and run in chunks of at most
``max_batch_size``. Graphs without a usable batch axis (a fixed batch of 1, or none at all) are
looped one instance at a time, so callers never need to know.

Each chunk's outputs are formatted as a whole (see :mod:`sinfer.codecs.outputs`), not instance
by instance: a request's single instance and a record block's thousands take the same code,
and the per-instance cost stays in plain Python rather than in numpy calls per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from sinfer.codecs.arrays import check_batch_shape, check_sample_shape, coerce, plain_numbers, shape_fits
from sinfer.codecs.instances import BadImageError, QuickImage, Sample, to_sample
from sinfer.codecs.outputs import postprocess_batch, postprocess_json, to_jsonable
from sinfer.errors import InvalidInputError, ManifestError
from sinfer.model.signature import TensorSpec, read_signature
from sinfer.model.store import ModelFiles

DEFAULT_MAX_BATCH = 256


class LoadedModel:
    def __init__(self, files: ModelFiles, session: Any) -> None:
        self.name = files.name
        self.version = files.version
        self.manifest = files.manifest
        self.session = session
        self._binding_run = _binding_run(session)
        # Time spent inside ONNX Runtime's runs (which release the GIL), summed: the record
        # pipeline reads it to tell whether overlapping parsing with inference can pay.
        self.run_seconds = 0.0
        self.inputs, self.outputs = read_signature(session, files.manifest)
        self.input_names = [spec.name for spec in self.inputs]
        self.output_names = [spec.name for spec in self.outputs]
        self.inputs_by_name = {spec.name: spec for spec in self.inputs}
        self._quick_image = QuickImage.of(self.inputs)
        # Loop when any input cannot carry a batch (fixed at 1, or no batch axis at all).
        self.loops = any(spec.fixed_batch_one or not spec.has_batch_axis for spec in self.inputs)
        # Only a looped instance that was given a batch axis of 1 gets it taken off its outputs:
        # a graph with no batch axis at all (input float[3]) returns its outputs whole, even [1].
        self._unbatch_looped = any(spec.has_batch_axis for spec in self.inputs)
        self.max_batch = 1 if self.loops else (files.manifest.max_batch_size or DEFAULT_MAX_BATCH)
        dtype = self.inputs[0].dtype if len(self.inputs) == 1 else None
        self._takes_arrays = not self.loops and dtype is not None and dtype.kind in "biuf"
        self._sample_shape = self.inputs[0].sample_shape if self._takes_arrays else None
        # Instances that are rows of numbers of this one width (a fixed 1-D sample shape) need no
        # shape check once plain_numbers has taken them: it stacks them as (count, width).
        sample = self._sample_shape
        self._row_shape = sample if sample is not None and len(sample) == 1 and None not in sample else None
        self._post = files.manifest.postprocess
        self._labels = files.manifest.labels
        # Predictions fetch only what they format: with a postprocess rule, that one output.
        # ONNX Runtime then skips converting the others, and skl2onnx's ZipMap dicts or a
        # classifier's label tensor can cost more than running a small model. run() and
        # run_v2() still return every output.
        self._fetch = (
            [self.output_names[self._postprocess_output_index()]]
            if self._post is not None
            else list(self.output_names)
        )
        if self._post is not None:
            self._check_postprocess(self.outputs[self._postprocess_output_index()])

    def _check_postprocess(self, spec: TensorSpec) -> None:
        """The rule's output must hold scores, and the labels name its classes (where the graph
        fixes their number): else every prediction would be wrong, or a 500."""
        if spec.dtype is not None and spec.dtype.kind != "f":
            raise ManifestError(
                f"model.json postprocess reads output {spec.name!r}, which holds {spec.describe()}, "
                "not scores: name a float scores output (or a ZipMap) in postprocess.output"
            )
        classes = spec.shape[-1] if spec.dtype is not None and spec.shape else None
        labels = self._labels
        if labels is not None and isinstance(classes, int) and len(labels) != classes:
            raise ManifestError(
                f"model.json labels has {len(labels)} names, but output {spec.name!r} scores "
                f"{classes} classes"
            )

    def _postprocess_output_index(self) -> int:
        if self._post is None:
            return -1
        if self._post.output is not None:
            if self._post.output not in self.output_names:
                raise ManifestError(
                    f"model.json postprocess.output {self._post.output!r} is not a graph output; "
                    f"outputs are {self.output_names}"
                )
            return self.output_names.index(self._post.output)
        # Default: the last float tensor or sequence output (classifiers put scores last).
        for index in range(len(self.outputs) - 1, -1, -1):
            spec = self.outputs[index]
            if spec.dtype is None or spec.dtype.kind == "f":
                return index
        return len(self.outputs) - 1

    # --- running -------------------------------------------------------------------------

    def run(self, feeds: dict[str, np.ndarray[Any, Any]]) -> list[Any]:
        """Run whole tensors (batch on axis 0) and return the outputs in graph order."""
        if self.loops:
            batch = _batch_size(self.inputs, feeds)
            if batch > 1:
                return _concat([self._session_run(_slice(self.inputs, feeds, i)) for i in range(batch)])
        return self._session_run(feeds)

    def _session_run(
        self, feeds: dict[str, np.ndarray[Any, Any]], names: list[str] | None = None
    ) -> list[Any]:
        """The named outputs (all, in graph order, by default) of one run."""
        started = perf_counter()
        try:
            outputs: list[Any] = self._binding_run(names or self.output_names, feeds, None)
        except Exception as exc:  # onnxruntime's pybind errors share no importable base class
            raise InvalidInputError(f"the model could not run on this input: {_short(exc)}") from None
        finally:
            self.run_seconds += perf_counter() - started
        return outputs

    def run_v2(self, tensors: dict[str, np.ndarray[Any, Any]]) -> list[Any]:
        """Open Inference Protocol path: validate names and full shapes, then run."""
        missing = [n for n in self.input_names if n not in tensors]
        unknown = [n for n in tensors if n not in self.inputs_by_name]
        if missing or unknown:
            raise InvalidInputError(
                f"expected inputs {self.input_names}; missing {missing}, unknown {unknown}"
            )
        feeds = {}
        for spec in self.inputs:
            array = coerce(spec, tensors[spec.name])
            check_batch_shape(spec, array)
            feeds[spec.name] = array
        _batch_size(self.inputs, feeds)  # inputs must agree on the batch size
        return self.run(feeds)

    # --- instances -----------------------------------------------------------------------

    def to_sample(self, instance: Any, where: str) -> Sample:
        return to_sample(self.inputs, instance, where)

    def quick_sample(self, instance: Any) -> Sample | None:
        """``to_sample(instance, ...)`` for a ``{"b64": ...}`` image (or an image's bytes) that
        decodes to exactly the image input's dtype and shape, without building ``where``; None
        for anything else. An image the decoder refuses raises ``BadImageError``, whose ``at(where)``
        is ``to_sample``'s error for it."""
        quick = self._quick_image
        return None if quick is None else quick.sample(instance)

    def predict(self, instances: Sequence[Any], where: str = "instances") -> list[Any]:
        """Predictions for a list of instances; the first bad instance raises (API semantics)."""
        batch = self._whole_batch(instances)
        if batch is not None:
            return self._predict_batch(batch, len(instances))
        samples = []
        for i, instance in enumerate(instances):
            try:
                sample = self.quick_sample(instance)
            except BadImageError as exc:
                raise exc.at(f"{where}[{i}]") from None
            samples.append(sample or self.to_sample(instance, f"{where}[{i}]"))
        return self.predict_samples(samples)

    def _whole_batch(self, instances: Sequence[Any]) -> np.ndarray[Any, Any] | None:
        """Every instance converted and validated at once, when each is a plain list of numbers.

        That is what nearly every request to a single-input numeric model is, and one
        ``np.asarray`` over the batch costs about what one instance's conversion costs (32
        tabular rows: ~15 us instead of ~190 us). The checks are those the per-instance path
        applies (element kind, whole numbers and range for integer inputs, sample shape), run
        on the batch. Anything else (objects, images, ragged or invalid values) returns None
        and takes the per-instance path, which also produces the error naming the instance.
        """
        if not self._takes_arrays or not instances:
            return None
        # A request's rows of plain numbers, the usual case, are converted without coerce's
        # general path (plain_numbers answers None for anything it cannot take exactly).
        spec = self.inputs[0]
        array = plain_numbers(instances, spec.dtype) if instances[0].__class__ is list else None
        if array is not None and (len(instances[0]),) == self._row_shape:
            return array
        try:
            if array is not None:
                return self._check_batch(array, len(instances))
            if not all(type(instance) is list for instance in instances):
                return None
            return self._validate_batch(instances, len(instances))
        except InvalidInputError:
            return None

    @property
    def takes_arrays(self) -> bool:
        """One numeric input with a batch axis: whole batches can be validated and run at once."""
        return self._takes_arrays

    def _validate_batch(self, values: Any, count: int) -> np.ndarray[Any, Any]:
        return self._check_batch(coerce(self.inputs[0], values), count)

    def _check_batch(self, array: np.ndarray[Any, Any], count: int) -> np.ndarray[Any, Any]:
        """A converted batch's shape: ``count`` instances, each of the input's sample shape."""
        if array.ndim == 0 or array.shape[0] != count:
            raise InvalidInputError(f"input {self.input_names[0]!r}: expected {count} instances along axis 0")
        if count == 0 or self._sample_shape is None or shape_fits(self._sample_shape, array.shape[1:]):
            return array
        # Flat values for a fixed-shape input are reshaped, as per instance; else this raises.
        one = check_sample_shape(self.inputs[0], array[0])
        return array.reshape((count, *one.shape))

    def predict_array(self, array: np.ndarray[Any, Any]) -> list[Any]:
        """Predictions for a numeric block (axis 0 = instances) of a :attr:`takes_arrays` model.

        The record pipeline's block path: the block is validated as a whole, as ``predict``
        validates a request's instances, and any :class:`InvalidInputError` means the block as
        a whole does not fit, so the caller falls back to records one by one (which name the
        culprit). Results equal ``predict(array.tolist())``.
        """
        batch = self._validated_block(array)
        return self._predict_batch(batch, len(batch))

    def predict_array_lines(self, array: np.ndarray[Any, Any], start: int) -> bytes:
        """``prediction_lines(start, self.predict_array(array))``: a block's result lines.

        The same runs as ``predict_array``; a post-processed chunk's lines are written straight
        from its score table where ``postprocess_json`` writes them exactly (~0.5 us a row
        instead of ~2 for building each prediction's dicts and dumping them), else from its
        predictions. tests/unit/test_batch_json.py checks the two against each other.
        """
        # Deferred: the records package (its readers and writers) is ~25 ms of imports that a
        # real-time function's cold start does not need.
        from sinfer.records.types import fragment_lines, prediction_lines

        post, labels = self._post, self._labels
        parts = []
        for lo, size, columns in self._chunk_columns(self._validated_block(array)):
            fragments = None if post is None else postprocess_json(post, columns[0], labels)
            if fragments is None:
                parts.append(prediction_lines(start + lo, self._format(columns)))
            else:
                parts.append(fragment_lines(start + lo, size, fragments))
        return b"".join(parts)

    def _validated_block(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if not self.takes_arrays:
            raise InvalidInputError(f"model {self.name!r} does not take whole numeric blocks")
        return self._validate_batch(array, len(array))

    def _predict_batch(self, batch: np.ndarray[Any, Any], count: int) -> list[Any]:
        if count <= self.max_batch:  # one chunk (every API request but the largest): no slicing
            outputs = self._session_run({self.input_names[0]: batch}, self._fetch)
            return self._format(self._columns(outputs, count))
        results: list[Any] = []
        for _, _, columns in self._chunk_columns(batch):
            results.extend(self._format(columns))
        return results

    def _chunk_columns(self, batch: np.ndarray[Any, Any]) -> Iterator[tuple[int, int, list[Any]]]:
        """A validated batch run ``max_batch`` rows at a time: each chunk's first row, its row
        count and its output columns."""
        name = self.input_names[0]
        for lo in range(0, len(batch), self.max_batch):
            chunk = batch[lo : lo + self.max_batch]
            size = len(chunk)
            yield lo, size, self._columns(self._session_run({name: chunk}, self._fetch), size)

    def predict_samples(self, samples: Sequence[Sample]) -> list[Any]:
        results: list[Any] = []
        for chunk in _chunks(samples, self.max_batch):
            results.extend(self._format(self._run_samples(chunk)))
        return results

    def _run_samples(self, samples: Sequence[Sample]) -> list[Any]:
        """A chunk of samples → the fetched outputs as columns (item ``i`` is instance ``i``'s)."""
        if self.loops:
            per_instance = []
            for sample in samples:
                feeds = {
                    spec.name: sample[spec.name][None] if spec.has_batch_axis else sample[spec.name]
                    for spec in self.inputs
                }
                outputs = self._session_run(feeds, self._fetch)
                per_instance.append(
                    [_first(o) if self._unbatch_looped and _batched(o, 1) else o for o in outputs]
                )
            return [list(column) for column in zip(*per_instance, strict=True)]
        feeds = {name: _stack([sample[name] for sample in samples], name) for name in self.input_names}
        return self._columns(self._session_run(feeds, self._fetch), len(samples))

    def _columns(self, outputs: list[Any], count: int) -> list[Any]:
        """A batch's outputs → columns: batched outputs as they are, unbatched ones repeated."""
        return [o if _batched(o, count) else [o] * count for o in outputs]

    def _format(self, columns: list[Any]) -> list[Any]:
        """The fetched outputs' columns → each instance's prediction (post-processed if the
        manifest says so; else the output's value, or ``{output name: value}`` for several)."""
        if self._post is not None:
            return postprocess_batch(self._post, columns[0], self._labels)
        # to_jsonable on a whole column equals it applied to each instance's item.
        values = [to_jsonable(column) for column in columns]
        if len(values) == 1:
            return values[0]  # type: ignore[no-any-return]
        return [dict(zip(self.output_names, row, strict=True)) for row in zip(*values, strict=True)]

    # --- metadata ------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Open Inference Protocol model metadata."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [_tensor_metadata(spec) for spec in self.inputs],
            "outputs": [_tensor_metadata(spec) for spec in self.outputs],
        }


def _binding_run(session: Any) -> Any:
    """``session``'s C++ ``run(output_names, feeds, run_options)``, or its Python ``run`` in that shape.

    Why: ``InferenceSession.run`` checks in Python, on every call, that every graph input is fed,
    that no OrtValue belongs to another device, and that no graph capture is on, then retries on
    an execution-provider failure: ~2 us of a small model's ~9 us run, more right after the
    previous run. None of it applies here: feeds are always numpy arrays for every input by name
    (the C++ run still refuses a missing one, with the same kind of error), and sessions use the
    CPU provider alone (:mod:`sinfer.model.session`). ``_sess`` is onnxruntime's own binding,
    stable across its releases. Anything else (another version without it, a wrapper or test
    double, a subclass with its own ``run``) is called through its public ``run``.
    tests/unit/test_model_any_onnx pins both routes.
    """
    public = getattr(type(session), "run", None)
    binding = vars(session).get("_sess") if hasattr(session, "__dict__") else None
    run = getattr(binding, "run", None)
    if callable(run) and getattr(public, "__module__", "").startswith("onnxruntime."):
        return run
    return lambda names, feeds, _options: session.run(names, feeds)


def _batched(output: Any, count: int) -> bool:
    """Whether an output has one item per instance (axis 0), rather than one for the batch."""
    if isinstance(output, np.ndarray):
        return output.ndim > 0 and output.shape[0] == count
    return isinstance(output, list) and len(output) == count


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.v2_datatype, "shape": spec.v2_shape()}


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__


def _stack(arrays: list[np.ndarray[Any, Any]], name: str) -> np.ndarray[Any, Any]:
    if len(arrays) == 1:  # a batch of one (most API calls): a view, no copy, ~3 us less than stack
        return arrays[0][None]
    try:
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({tuple(a.shape) for a in arrays})
        raise InvalidInputError(f"input {name!r}: instances have different shapes {shapes[:5]}") from None


def _batch_size(inputs: list[TensorSpec], feeds: dict[str, np.ndarray[Any, Any]]) -> int:
    sizes = {feeds[s.name].shape[0] for s in inputs if s.has_batch_axis and feeds[s.name].ndim}
    if len(sizes) > 1:
        raise InvalidInputError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _slice(inputs: list[TensorSpec], feeds: dict[str, np.ndarray[Any, Any]], i: int) -> dict[str, Any]:
    return {s.name: feeds[s.name][i : i + 1] if s.has_batch_axis else feeds[s.name] for s in inputs}


def _concat(runs: list[list[Any]]) -> list[Any]:
    merged: list[Any] = []
    for index in range(len(runs[0])):
        parts = [run[index] for run in runs]
        if isinstance(parts[0], np.ndarray):
            merged.append(np.concatenate(parts) if parts[0].ndim else np.stack(parts))
        else:
            merged.append([item for part in parts for item in part])
    return merged


def _first(output: Any) -> Any:
    return output[0]


def _chunks(items: Sequence[Sample], size: int) -> Iterator[Sequence[Sample]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

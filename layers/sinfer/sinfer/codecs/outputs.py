"""Model outputs → JSON-ready values, for every output type ONNX Runtime returns.

ONNX Runtime hands back numpy arrays for tensors (any element type, including float16 and
strings), Python lists of dicts for ``seq(map(...))`` (skl2onnx's ZipMap), and lists for
other sequences. Everything becomes plain lists, numbers, strings and dicts with string keys.
Non-finite floats become ``null``: JSON has no NaN, and a caller's parser should not choke.

Both conversions take whole batches: the record pipeline runs blocks of thousands of rows, where
one numpy call per row would cost more than the model itself. So numpy works on the batch, one
``tolist`` turns it into Python numbers, and only the per-instance dicts are built row by row.
A single instance is the batch of one, through the same code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from sinfer.model.manifest import Postprocess

Labels = tuple[str, ...] | None
Floats = np.ndarray[Any, np.dtype[np.floating[Any]]]
# Per class: its name as JSON, its name as a probabilities key; then (instances, classes) scores.
ScoreTable = tuple[Sequence[Any], Sequence[str], Floats]
# A batched output (axis 0 = instances) or a sequence of per-instance values.
Batch = np.ndarray[Any, Any] | Sequence[Any]
_PLAIN = frozenset({str, int, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    """Any output value → JSON-ready values.

    For a batched output (an array or list whose axis 0 is the instances), item ``i`` of the
    result equals ``to_jsonable(value[i])``, so a whole batch's output converts in one call.
    """
    if value.__class__ in _PLAIN:  # already JSON: class names, ids (checks below cost ~0.5 us)
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            if not np.isfinite(value).all():
                return _finite(value.tolist())
            return value.tolist()
        if value.dtype.kind == "S":
            return (
                [to_jsonable(v) for v in value.tolist()]
                if value.ndim
                else value.item().decode("utf-8", "replace")
            )
        if value.dtype.kind == "O":
            return [to_jsonable(v) for v in value.tolist()] if value.ndim else to_jsonable(value.item())
        return value.tolist()
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


# Batch results are written with orjson, which serialises at most 254 levels (beyond that, the
# json module's recursive path, which a few hundred more levels take past the interpreter's
# recursion limit). A service's output deeper than this is an error line, not a merge that fails.
MAX_OUTPUT_DEPTH = 200
DEEP_OUTPUT_MESSAGE = f"the model's output is nested more than {MAX_OUTPUT_DEPTH} levels deep"


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts in ``value`` nest more than ``limit`` levels (without recursing)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def postprocess(rule: Postprocess, value: Any, labels: Labels) -> dict[str, Any]:
    """Apply a manifest post-processing rule to one instance's scores: the batch of one."""
    return postprocess_batch(rule, [value], labels)[0]


def postprocess_batch(rule: Postprocess, values: Batch, labels: Labels) -> list[dict[str, Any]]:
    """Apply a manifest post-processing rule to every instance of a batch.

    ``values`` is a batched output (an array whose axis 0 is the instances) or a sequence of
    per-instance values: score vectors, or ZipMap ``{class: score}`` dicts. Each instance gets
    what it would get alone: its scores flattened to float64 and named by ``labels`` (ZipMap
    int keys index into them; vectors take them when the counts match, else indices).
    """
    if len(values) == 0:
        return []
    if not rule.softmax and len(values) <= SMALL_BATCH:
        small = _apply_small(rule, values, labels)
        if small is not None:
            return small
    table = _score_table(values, labels)
    if table is None:  # instances disagree on their classes or sizes: one batch of one each
        return [postprocess(rule, value, labels) for value in values]
    return _apply(rule, *table)


# Batches up to this many instances, with at most SMALL_TABLE scores in all, are formatted in
# plain Python (see _apply_small); larger ones with numpy over the batch.
SMALL_BATCH = 4
SMALL_TABLE = 64


def _apply_small(rule: Postprocess, values: Batch, labels: Labels) -> list[dict[str, Any]] | None:
    """The rule over a small batch without numpy: what ``_apply`` gives, or None to use it.

    Why a second path: a real-time request usually carries one instance of a few classes, and
    there each numpy call costs a microsecond or more (two to four times that right after
    ``session.run`` has evicted the interpreter's caches): one breast_cancer or digits instance
    takes ~6.5-7 us through ``_score_table`` + ``_apply`` in a warm loop, ~3.5-4 here, and the
    gap grows in the handler. It takes only what it formats exactly as ``_apply`` does:
    finite scores, no softmax (``math.exp`` and numpy's ``exp`` may differ in the last bit), rows
    of one size, at most SMALL_TABLE scores. The order is the stable descending one, as
    ``(-scores).argsort(kind="stable")`` gives: Python's sort is stable with ``reverse=True``
    too, and with finite scores the first maximum is argmax's pick. tests/unit/test_batch_outputs
    checks it against ``_apply`` on generated tables.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind != "f" or values.size > SMALL_TABLE:
            return None
        # (2-D already, the usual case: a reshape costs ~1 us in the handler for nothing)
        rows: list[list[float]] = (values if values.ndim == 2 else values.reshape(len(values), -1)).tolist()
        shown, keys = _vector_names(len(rows[0]), labels)
    else:
        names = tuple(values[0]) if values[0].__class__ is dict else ()
        if not names or len(names) * len(values) > SMALL_TABLE:
            return None
        try:  # (floats that are not numbers: the numpy path raises its error)
            rows = [
                list(map(float, value.values()))
                for value in values
                if value.__class__ is dict and tuple(value) == names
            ]
        except (TypeError, ValueError):
            return None
        if len(rows) != len(values):
            return None
        shown, keys = _zipmap_names(names, labels)
    if not rows[0]:
        return None
    for row in rows:  # (rows are of one size: one array's, or dicts' with the same keys)
        # NaN or infinity makes the sum so (a sum of finite scores that overflows merely falls
        # back); math.isfinite per score costs more.
        if not -math.inf < sum(row) < math.inf:
            return None
    if rule.kind == "top_k":
        positions = range(len(rows[0]))
        order = [sorted(positions, key=row.__getitem__, reverse=True)[: rule.k] for row in rows]
        return _predictions(rule, shown, keys, rows, [top[0] for top in order], order)
    # The first maximum's position, as argmax gives (no NaN here to make max() and argmax differ).
    return _predictions(rule, shown, keys, rows, [row.index(max(row)) for row in rows])


def _score_table(values: Batch, labels: Labels) -> ScoreTable | None:
    """Class names and an (instances, classes) score table; None when the rows differ.

    Scores are float64, except that a float tensor keeps its own precision: widening it to
    float64 (as ``float(score)`` does) changes neither the order nor any value, and softmax
    widens it first.
    """
    count = len(values)
    if isinstance(values, np.ndarray):
        scores = values if values.dtype.kind == "f" else values.astype(np.float64)
        scores = scores.reshape(count, -1)
        return *_vector_names(scores.shape[1], labels), scores
    first = values[0]
    if isinstance(first, dict):
        keys = list(first)
        if count > 1 and not all(isinstance(value, dict) and list(value) == keys for value in values[1:]):
            return None
        flat = [score for value in values for score in value.values()]
        scores = np.asarray(flat, dtype=np.float64).reshape(count, len(keys))
        return *_zipmap_names(tuple(keys), labels), scores
    if count > 1 and any(isinstance(value, dict) for value in values):
        return None
    try:
        stacked = np.asarray(values, dtype=np.float64)
    except ValueError:  # per-instance vectors of different shapes (a single bad one raises)
        if count > 1:
            return None
        raise
    scores = stacked.reshape(count, -1)
    return *_vector_names(scores.shape[1], labels), scores


@functools.lru_cache(maxsize=64)  # a model asks for the same names on every call
def _zipmap_names(names: tuple[Any, ...], labels: Labels) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """ZipMap class keys → names: int keys index into the labels; other keys name themselves."""
    shown = tuple(
        to_jsonable(labels[k] if labels is not None and isinstance(k, int) and 0 <= k < len(labels) else k)
        for k in names
    )
    return shown, tuple(str(name) for name in shown)


@functools.lru_cache(maxsize=64)
def _vector_names(size: int, labels: Labels) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """A score vector's class names: the labels when they match its size, else indices."""
    names: tuple[Any, ...] = labels if labels is not None and len(labels) == size else tuple(range(size))
    return names, tuple(str(name) for name in names)


def _apply(
    rule: Postprocess, shown: Sequence[Any], keys: Sequence[str], scores: Floats
) -> list[dict[str, Any]]:
    """The rule over a score table, with as few numpy calls as the batch allows.

    Each numpy call costs about a microsecond whatever the size, a tenth of a small model's
    run, so a single instance's prediction is mostly this function's fixed cost: hence
    ``tolist`` once and Python for the rest.
    """
    scores = _rule_scores(rule, scores)
    finite = bool(np.isfinite(scores).all())  # (a sum would be one call, but warns on inf - inf)
    rows: list[list[Any]] = scores.tolist()
    if not finite:
        rows = [[s if math.isfinite(s) else None for s in row] for row in rows]
    if rule.kind == "top_k":
        order: list[list[int]] = _top_k(rule, scores).tolist()
        # Without NaN the stable descending order starts at the first maximum, which is argmax's
        # pick; with NaN argmax picks the NaN while the sort puts it last.
        best = [top[0] for top in order] if finite else scores.argmax(axis=1).tolist()
        predictions = _predictions(rule, shown, keys, rows, best, order)
    else:
        best = scores.argmax(axis=1).tolist()
        predictions = _predictions(rule, shown, keys, rows, best)
    if not finite:
        # argmax picks a row's first NaN: a row of NaN (a NaN input, say) would be labelled
        # its first class. No class wins such a row: its label is null, as its score is.
        for index, b in enumerate(best):
            if math.isnan(scores[index, b]):
                predictions[index]["label"] = None
    return predictions


def _rule_scores(rule: Postprocess, scores: Floats) -> Floats:
    """The scores the rule ranks and shows: softmax applied if it asks for it."""
    if not scores.shape[1]:
        raise ValueError("the postprocess output has no scores")
    if rule.softmax:  # row-wise, shifted by the row's maximum so large logits cannot overflow
        scores = scores.astype(np.float64, copy=False)
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = shifted / shifted.sum(axis=1, keepdims=True)
    return scores


def _top_k(rule: Postprocess, scores: Floats) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Each row's first ``rule.k`` classes in the stable descending order of their scores."""
    return (-scores).argsort(axis=1, kind="stable")[:, : rule.k]


def _predictions(
    rule: Postprocess,
    shown: Sequence[Any],
    keys: Sequence[str],
    rows: list[list[Any]],
    best: list[int],
    order: list[list[int]] | None = None,
) -> list[dict[str, Any]]:
    """Each instance's prediction under ``rule``, from its scores, its best class and (top_k)
    its classes in descending order: the one place a prediction's shape is written.

    The zips take no ``strict=True``: every sequence here is built from ``rows`` (one entry per
    row, one key per score), and passing any keyword sends ``zip`` down CPython's slow call
    path, ~0.25 us a call, once per row for the probabilities.
    """
    if rule.kind == "top_k":
        assert order is not None
        return [
            {
                "label": shown[b],
                "score": row[b],
                "top_k": [{"label": shown[i], "score": row[i]} for i in top],
            }
            for b, row, top in zip(best, rows, order)  # noqa: B905
        ]
    if rule.kind == "probabilities":
        return [
            {"label": shown[b], "score": row[b], "probabilities": dict(zip(keys, row))}  # noqa: B905
            for b, row in zip(best, rows)  # noqa: B905
        ]
    return [{"label": shown[b], "score": row[b]} for b, row in zip(best, rows)]  # noqa: B905


def postprocess_json(rule: Postprocess, values: Batch, labels: Labels) -> list[list[bytes] | bytes] | None:
    """Each instance's prediction as JSON, in columns of fragments; None where it cannot be exact.

    A column is a list (row ``i``'s fragment at ``i``) or one ``bytes`` that every row shares.
    Joined across row ``i``, the fragments are the bytes orjson writes for
    ``postprocess_batch(rule, values, labels)[i]``. Why a second path: a record block's
    lines are mostly formatting, and building each prediction's dicts (``_predictions``) and
    walking them with orjson costs ~2 us a row, more than parsing the row and running a small
    model together. Here the class names are written once per batch (one fragment per class,
    with the keys around it), the scores in one orjson call over the table (``json_numbers``),
    and numpy picks each row's fragments: ~0.5 us a row for digits' top 3 of 10 classes.

    It takes only what it writes exactly as the dicts would be written: finite scores (with
    NaN, argmax and the sort disagree on the best class, and non-finite scores are written
    null), names orjson writes as they are (plain str, int, float, bool, None) and, for
    ``probabilities``, distinct keys (a dict keeps only the last of equal keys). The order is
    ``_apply``'s. tests/unit/test_batch_json.py checks it against the dicts on generated tables.
    """
    if len(values) == 0:
        return None
    table = _score_table(values, labels)
    if table is None:
        return None
    shown, keys, scores = table
    if not scores.shape[1] or scores.dtype.itemsize > 8:  # (wider than float64: tolist's rounding)
        return None
    scores = _rule_scores(rule, scores)
    if not np.isfinite(scores).all() or not all(name.__class__ in _JSON_NAMES for name in shown):
        return None
    fragments = _name_fragments(rule.kind, tuple(shown), tuple(keys))
    if fragments is None:
        return None
    head, first, later, after = fragments
    if rule.kind == "top_k":
        order = _top_k(rule, scores)
        top = json_numbers(np.take_along_axis(scores, order, axis=1))
        width = order.shape[1]
        best, best_scores = order[:, 0], top[::width]  # the label and score are the first entry's
        columns: list[list[bytes] | bytes] = [
            head[best].tolist(),
            best_scores,
            first[best].tolist(),
            best_scores,
        ]
        for j in range(1, width):
            columns += [later[order[:, j]].tolist(), top[j::width]]
        return [*columns, b"}]}"]
    best = scores.argmax(axis=1)
    columns = [head[best].tolist(), json_numbers(scores[np.arange(len(scores)), best])]
    if rule.kind == "probabilities":
        every = json_numbers(scores)
        count = scores.shape[1]
        for j in range(count):
            columns += [after[j], every[j::count]]
        columns.append(b"}")
    return [*columns, b"}"]


# Classes whose names orjson writes as they are (a subclass goes through to_jsonable and json).
_JSON_NAMES = frozenset({str, int, float, bool, type(None)})
_Fragments = np.ndarray[Any, np.dtype[np.object_]]


@functools.lru_cache(maxsize=64)
def _name_fragments(
    kind: str, shown: tuple[Any, ...], keys: tuple[str, ...]
) -> tuple[_Fragments, _Fragments, _Fragments, tuple[bytes, ...]] | None:
    """Per class, the JSON that comes before its score in a prediction of this kind.

    Object arrays, so that numpy picks each row's fragments by class index: before the best
    class's score (``{"label":"3","score":``), before the first top-k entry's, before each
    later entry's; and per probabilities key, the text before its score (``,"3":``). None
    when orjson refuses a name (a lone surrogate, an integer past 64 bits) or keys repeat.
    """
    try:
        names = [orjson.dumps(name) for name in shown]
        quoted = [orjson.dumps(key) for key in keys]
    except orjson.JSONEncodeError:
        return None
    if kind == "probabilities" and len(set(keys)) != len(keys):
        return None
    head = _objects([b'{"label":' + name + b',"score":' for name in names])
    first = _objects([b',"top_k":[{"label":' + name + b',"score":' for name in names])
    later = _objects([b'},{"label":' + name + b',"score":' for name in names])
    after = tuple((b',"probabilities":{' if j == 0 else b",") + key + b":" for j, key in enumerate(quoted))
    return head, first, later, after


def _objects(items: list[bytes]) -> _Fragments:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def json_numbers(array: np.ndarray[Any, Any]) -> list[bytes]:
    """The JSON text of each number of a non-empty array (flattened), as orjson writes the
    Python numbers ``tolist`` gives: one orjson call for the whole array.

    Floats are widened to float64 first, since orjson writes a float32 array's values in their
    shortest float32 form ("0.1") where ``tolist`` gives the float64 value (0.10000000149011612).
    orjson writes a float64 array's values with the digits it writes for Python floats, which
    tests/unit/test_batch_json.py checks over random bit patterns and every exponent.
    """
    if array.dtype.kind == "f":
        array = array.astype(np.float64, copy=False)
    flat = np.ascontiguousarray(array).ravel()
    return orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")

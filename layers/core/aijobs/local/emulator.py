"""Where moto behaves unlike AWS in ways our code depends on, and how the local stack and the tests fix it.

Real DynamoDB applies each request to an item atomically: of two conditional writes racing for one item, one
fails its condition. moto serves concurrent requests on concurrent threads (in-process under ``mock_aws``, and
in ``ThreadedMotoServer``) and checks a condition and writes the item as separate steps, so both can succeed.

moto's DynamoDB cannot ADD a number written in exponent form (``2E-8``, how Python writes a tiny Decimal cost):
``make_dynamodb_atomic`` fixes that too.

moto's S3 Vectors stores vectors but has no QueryVectors, and forgets an index's non-filterable metadata keys:
``emulate_vector_queries`` adds both (an exact search; S3 Vectors' own is approximate).
"""

from __future__ import annotations

import functools
import math
import threading
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

# Re-entrant: a DynamoDB action that made another DynamoDB request on the same thread must not deadlock.
_DYNAMODB_LOCK = threading.RLock()
_PATCH_LOCK = threading.Lock()
_MARK = "_aijobs_serialized"


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB actions with one process-wide lock, so that conditional writes are atomic.

    Idempotent and process-wide: later calls change nothing. It wraps the one method that every DynamoDB
    request reaches, whether moto runs in-process (``mock_aws``) or as a server in this process.

    Examples
    --------
    >>> make_dynamodb_atomic()
    >>> make_dynamodb_atomic()  # a second call is a no-op
    >>> dynamodb_is_atomic()
    True
    """
    from moto.dynamodb.responses import DynamoHandler

    with _PATCH_LOCK:
        original = DynamoHandler.call_action
        if getattr(original, _MARK, False):
            return

        @functools.wraps(original)
        def call_action(self: DynamoHandler) -> Any:
            with _DYNAMODB_LOCK:
                return original(self)

        setattr(call_action, _MARK, True)
        setattr(DynamoHandler, "call_action", call_action)  # noqa: B010  (mypy refuses a method assignment)
        _add_numbers_in_any_form()


def _add_numbers_in_any_form() -> None:
    """moto's number ADD reads a number without a "." as an int, which "2E-8" is not: read any number as DynamoDB
    does (a Decimal; an int when integral, as moto writes them)."""
    from decimal import Decimal

    from moto.dynamodb.models.dynamo_type import DDBType, DynamoType

    original = DynamoType.__add__

    def add(self: DynamoType, other: DynamoType) -> DynamoType:
        if self.type == other.type and self.is_number():
            total = Decimal(self.value) + Decimal(other.value)
            return DynamoType({DDBType.NUMBER: f"{int(total) if total == total.to_integral_value() else total}"})
        return original(self, other)

    setattr(DynamoType, "__add__", add)  # noqa: B010


def dynamodb_is_atomic() -> bool:
    """Whether ``make_dynamodb_atomic`` is in effect in this process."""
    from moto.dynamodb.responses import DynamoHandler

    return bool(getattr(DynamoHandler.call_action, _MARK, False))


def start_moto_server(port: int = 0) -> Any:
    """moto as a server on 127.0.0.1 (``port``, else a free one) in this process, with atomic DynamoDB; ``.stop()``
    ends it. (``make run`` serves it in a process of its own: moto_process.py.)"""
    import logging

    from moto.server import ThreadedMotoServer

    from aijobs.local.fast_moto import make_moto_faster

    make_dynamodb_atomic()
    make_moto_faster()
    emulate_vector_queries()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


# --- S3 Vectors: QueryVectors -------------------------------------------------------------------------------------

TOP_K_LIMIT = 100  # results of one QueryVectors request (S3 Vectors' limits)
_VECTORS_MARK = "_aijobs_queries"
_COMPARISONS = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}


class VectorQueryInvalid(ValueError):
    """What S3 Vectors answers with a 400 ValidationException; the message is AWS's kind of message."""


def emulate_vector_queries() -> None:
    """Give moto's S3 Vectors the QueryVectors it lacks: a test double for the local stack and the tests, never the
    production path (in AWS, S3 Vectors itself answers, approximately).

    The search is exact (brute force over every vector of the index) with the index's distance metric as AWS
    documents it: cosine distance = 1 - cosine similarity, euclidean distance = the straight-line distance. It
    honours ``topK`` (1-100), ``filter`` (``matches_filter``, on filterable metadata only: the index's
    ``nonFilterableMetadataKeys``, which moto forgets, are kept here), ``returnMetadata`` and ``returnDistance``;
    results come nearest first, all on one page (no ``nextToken``). Full-text ``queryTexts`` are not emulated.
    Idempotent and process-wide, like ``make_dynamodb_atomic``: it patches moto's S3 Vectors classes, which
    serve ``mock_aws`` and ``ThreadedMotoServer`` alike; call it before moto's first S3 Vectors request.

    Examples
    --------
    >>> emulate_vector_queries()
    >>> emulate_vector_queries()  # a second call is a no-op
    """
    from moto.s3vectors import urls
    from moto.s3vectors.responses import S3VectorsResponse

    with _PATCH_LOCK:
        if getattr(S3VectorsResponse, _VECTORS_MARK, False):
            return
        urls.url_paths["{0}/QueryVectors$"] = S3VectorsResponse.dispatch
        create_index = S3VectorsResponse.create_index

        @functools.wraps(create_index)
        def create_index_keeping_its_metadata_configuration(self: S3VectorsResponse) -> Any:
            result = create_index(self)
            bucket = self._get_param("vectorBucketName") or str(self._get_param("vectorBucketArn")).rsplit("/")[-1]
            index = self.s3vectors_backend.get_index(bucket, self._get_param("indexName"), "")
            configuration = self._get_param("metadataConfiguration") or {}
            index.non_filterable_keys = frozenset(configuration.get("nonFilterableMetadataKeys") or ())  # type: ignore[attr-defined]
            return result

        setattr(S3VectorsResponse, "create_index", create_index_keeping_its_metadata_configuration)  # noqa: B010
        setattr(S3VectorsResponse, "query_vectors", _query_vectors_action)  # noqa: B010
        setattr(S3VectorsResponse, _VECTORS_MARK, True)


def _query_vectors_action(self: Any) -> Any:
    """moto's handler of QueryVectors (a method of ``S3VectorsResponse`` once ``emulate_vector_queries`` ran)."""
    from moto.core.responses import ActionResult
    from moto.s3vectors.exceptions import ValidationError

    self._validate_index_params(self._get_param("indexArn"), self._get_param("indexName"),
                                self._get_param("vectorBucketName"))
    index = self.s3vectors_backend.get_index(self._get_param("vectorBucketName"), self._get_param("indexName"),
                                             self._get_param("indexArn"))
    stored = [(v.key, v.data["float32"], v.metadata or {}) for v in list(index.vectors.values())]
    try:
        found = query_vectors(stored, (self._get_param("queryVector") or {}).get("float32"),
                              metric=index.distance_metric, dimension=index.dimension,
                              top_k=self._get_param("topK"), filter_=self._get_param("filter"),
                              non_filterable=getattr(index, "non_filterable_keys", frozenset()))
    except VectorQueryInvalid as exc:
        raise ValidationError(str(exc)) from None
    return_metadata = self._get_bool_param("returnMetadata", False)
    return_distance = self._get_bool_param("returnDistance", False)
    vectors = [{"key": key, **({"distance": distance} if return_distance else {}),
                **({"metadata": metadata} if return_metadata else {})} for key, distance, metadata in found]
    return ActionResult({"vectors": vectors, "distanceMetric": index.distance_metric})


def query_vectors(stored: Iterable[tuple[str, list[float], Mapping[str, Any]]], query: list[float] | None, *,
                  metric: str, dimension: int, top_k: Any, filter_: Any = None,
                  non_filterable: Iterable[str] = ()) -> list[tuple[str, float, Mapping[str, Any]]]:
    """The ``top_k`` stored vectors (key, data, metadata) nearest to ``query`` that match ``filter_``, nearest first,
    as (key, distance, metadata); raises ``VectorQueryInvalid`` where S3 Vectors answers 400.

    Vectors are compared as float32, as S3 Vectors stores them; ties are broken by key, so answers are stable.

    Examples
    --------
    >>> stored = [("a", [1.0, 0.0], {"tenant": "t1"}), ("b", [0.0, 1.0], {"tenant": "t2"})]
    >>> found = query_vectors(stored, [1.0, 0.1], metric="cosine", dimension=2, top_k=1, filter_={"tenant": "t2"})
    >>> [(key, round(distance, 3)) for key, distance, _ in found]
    [('b', 0.9)]
    """
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= TOP_K_LIMIT:
        raise VectorQueryInvalid(f"1 validation error detected. Value at '/topK' failed to satisfy constraint: "
                                 f"Member must be between 1 and {TOP_K_LIMIT}, inclusive")
    if not isinstance(query, list):
        raise VectorQueryInvalid("queryVector is required (full-text queryTexts are not emulated)")
    if len(query) != dimension:
        raise VectorQueryInvalid(f"Invalid query vector: vector must have length {dimension}, "
                                 f"but has length {len(query)}")
    target = array("f", query)
    if not all(math.isfinite(v) for v in target):
        raise VectorQueryInvalid("Invalid query vector: it contains NaN or infinite values")
    if metric == "cosine" and not any(target):
        raise VectorQueryInvalid("Invalid query vector: a zero vector has no cosine distance")
    if filter_ is not None:
        _check_filter(filter_, frozenset(non_filterable))
    distance = _cosine_distance if metric == "cosine" else _euclidean_distance
    found = [(key, distance(target, array("f", data)), metadata) for key, data, metadata in stored
             if filter_ is None or matches_filter(filter_, metadata)]
    return sorted(found, key=lambda item: (item[1], item[0]))[:top_k]


def _cosine_distance(a: array[float], b: array[float]) -> float:
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return 1.0 - math.fsum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 1.0


def _euclidean_distance(a: array[float], b: array[float]) -> float:
    return math.dist(a, b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_primitive(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def _same(a: Any, b: Any) -> bool:
    """Equal as S3 Vectors compares metadata: a number is never a boolean (Python's ``True == 1`` aside)."""
    return (_is_number(a) and _is_number(b) and a == b) or (type(a) is type(b) and not _is_number(a) and a == b)


def _check_filter(filter_: Any, non_filterable: frozenset[str]) -> None:
    """Refuse what S3 Vectors refuses: an operator it lacks, an operand of the wrong type, a non-filterable key."""
    if not isinstance(filter_, dict) or not filter_:
        raise VectorQueryInvalid("Invalid filter: a filter is a non-empty object")
    for name, condition in filter_.items():
        if name in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise VectorQueryInvalid(f"Invalid filter: {name} takes a non-empty array of filters")
            for part in condition:
                _check_filter(part, non_filterable)
            continue
        if name.startswith("$"):
            raise VectorQueryInvalid(f"Invalid filter: unknown operator {name}")
        if name in non_filterable:
            raise VectorQueryInvalid(f"Invalid filter: metadata key {name} is not filterable")
        operations = condition if isinstance(condition, dict) else {"$eq": condition}
        if not operations:
            raise VectorQueryInvalid(f"Invalid filter: no operator for {name}")
        for operator, operand in operations.items():
            _check_operand(operator, operand)


def _check_operand(operator: str, operand: Any) -> None:
    if operator in ("$eq", "$ne"):
        ok = _is_primitive(operand)
    elif operator in _COMPARISONS:
        ok = _is_number(operand)
    elif operator in ("$in", "$nin"):
        ok = isinstance(operand, list) and bool(operand) and all(_is_primitive(v) for v in operand)
    elif operator == "$exists":
        ok = isinstance(operand, bool)
    else:
        raise VectorQueryInvalid(f"Invalid filter: unknown operator {operator}")
    if not ok:
        raise VectorQueryInvalid(f"Invalid filter: wrong operand type for {operator}")


def matches_filter(filter_: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether a vector's metadata matches a (checked) filter, with S3 Vectors' documented operators.

    Several keys in one object must all match; a bare value means ``$eq``. On a list value, ``$eq`` and ``$in``
    match when any element does, ``$ne`` and ``$nin`` when none does. A key the vector lacks matches only ``$ne``,
    ``$nin`` and ``{"$exists": false}`` (AWS does not say; this is MongoDB's rule, which its syntax follows).

    Examples
    --------
    >>> either = {"$or": [{"year": {"$gte": 2020}}, {"genre": {"$in": ["drama", "comedy"]}}]}
    >>> matches_filter(either, {"year": 2019, "genre": "drama"})
    True
    """
    for name, condition in filter_.items():
        if name == "$and":
            ok = all(matches_filter(part, metadata) for part in condition)
        elif name == "$or":
            ok = any(matches_filter(part, metadata) for part in condition)
        else:
            operations = condition if isinstance(condition, dict) else {"$eq": condition}
            ok = all(_holds(operator, operand, name in metadata, metadata.get(name))
                     for operator, operand in operations.items())
        if not ok:
            return False
    return True


def _holds(operator: str, operand: Any, present: bool, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if operator == "$exists":
        return present is operand
    if operator == "$eq":
        return present and any(_same(v, operand) for v in values)
    if operator == "$ne":
        return not present or not any(_same(v, operand) for v in values)
    if operator == "$in":
        return present and any(_same(v, o) for v in values for o in operand)
    if operator == "$nin":
        return not present or not any(_same(v, o) for v in values for o in operand)
    return present and _is_number(value) and _COMPARISONS[operator](float(value), float(operand))

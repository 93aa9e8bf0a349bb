"""Where moto spends its time on the item requests a job makes, and the shortcuts the local stack takes.

A job through the local stack makes about ten DynamoDB item requests (claim, usage, slots, batch counters, the
terminal write): they, not the API or the worker, set the local stack's throughput. Replayed alone against moto
(its WSGI app, no HTTP), an UpdateItem of the stack's took 6.9 ms of CPU: about a quarter of it turning the answer
(the item, ALL_NEW) into JSON through the botocore shape of the operation, member by member, and another tenth
parsing its UpdateExpression twice (once to check its placeholders, once to apply it). A ReceiveMessage of ten
from a queue of 300 messages took 5 ms, most of it working out the queue's attributes for each message it handed
out (``check_retention_directly``). And each UpdateExpression's validation asked its processors' maps of node
classes, built anew each time, about a thousand times (``map_processors_once``: about 6% of an UpdateItem).

``serialize_items_directly``: the answers of item actions are JSON already (AttributeValues of strings, numbers
as strings, booleans, lists and maps): they are dumped as they are, with what the shape-walking serializer does
to them (bytes in base64, no null members). ``parse_update_expressions_once``: an expression's tree is kept by
its text (moto copies it before it substitutes names and values into it).

``project_directly``: moto projected an index's entries (and a read's ProjectionExpression) by turning the whole
item into JSON once per attribute kept; the kept attributes are copied instead (the same entries).

``validate_updates_once``: two of an UpdateExpression's checks walked the tree once per action (about 75 walks for a
job's terminal write); they check the whole tree once. ``send_messages_directly``: a sent message read all of its
queue's attributes (three passes over its messages) for one of them.

All are process-wide and idempotent, like ``make_dynamodb_atomic``, and change no answer: tests/integration/
test_fast_moto.py compares them with moto's own on every kind of attribute value.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

_PATCH_LOCK = threading.Lock()
_MARK = "_aijobs_fast"
# moto's item size limit (a little over DynamoDB's 400 KB, which moto measured at 409-410 KB)
ITEM_SIZE_CHECKED = 405_000
# Actions whose answer is items and counts: no timestamps, no members moto keeps but the shape drops.
ITEM_ACTIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "BatchWriteItem",
                          "Query", "Scan", "TransactGetItems", "TransactWriteItems"})


def _plain(value: Any) -> Any:
    """A result as moto's JSON serializer writes it: null members left out, bytes in base64, sets as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return value


@functools.cache
def _members(action: str) -> frozenset[str]:
    """The top-level members of the action's answer (moto keeps some the answer has not, ConsumedCapacityUnits)."""
    from moto.core.utils import get_service_model

    return frozenset(get_service_model("dynamodb").operation_model(action).output_shape.members)


def serialize_items_directly() -> None:
    """Answer DynamoDB's item actions by dumping their result as JSON (errors and other actions: moto's way)."""
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    with _PATCH_LOCK:
        original = DynamoHandler.serialized
        if getattr(original, _MARK, False):
            return

        @functools.wraps(original)
        def serialized(self: DynamoHandler, action_result: ActionResult) -> Any:
            result, action = action_result.result, self._get_action()
            if type(action_result) not in (ActionResult, DynamoResult) or not isinstance(result, dict) \
                    or action not in ITEM_ACTIONS:
                return original(self, action_result)
            members = _members(action)
            headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
            return 200, headers, json.dumps(_plain({k: v for k, v in result.items() if k in members}))

        setattr(serialized, _MARK, True)
        setattr(DynamoHandler, "serialized", serialized)  # noqa: B010


def parse_update_expressions_once() -> None:
    """Keep each UpdateExpression's parsed tree by its text. moto's Validator works on a deep copy of the tree it is
    given (it replaces names and values in it), and its handler only reads the tree, so one tree serves them all."""
    from moto.dynamodb.parsing import expressions

    with _PATCH_LOCK:
        parser = expressions.UpdateExpressionParser  # type: ignore[attr-defined]
        if getattr(parser.make, _MARK, False):
            return
        make = functools.lru_cache(maxsize=1024)(parser.make)  # bound to the class already
        setattr(make, _MARK, True)
        setattr(parser, "make", staticmethod(make))  # noqa: B010


def check_retention_directly() -> None:
    """Read a queue's retention period from the queue when a received message is checked against it. moto asks for
    it through GetQueueAttributes' code, which works out every attribute of the queue three times over (its counts
    of messages among them, each a pass over all of its messages), for each message it hands out."""
    from moto.sqs import models
    from moto.sqs.models import Message, SQSBackend

    with _PATCH_LOCK:
        original = SQSBackend.is_message_valid_based_on_retention_period
        if getattr(original, _MARK, False):
            return

        @functools.wraps(original)
        def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
            retention_s = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
            now = models.unix_time()  # type: ignore[attr-defined]  # moto.sqs.models own, as moto reads it
            return bool(retention_s + message.sent_timestamp / 1000 > now)  # type: ignore[operator]

        setattr(is_message_valid_based_on_retention_period, _MARK, True)
        setattr(SQSBackend, "is_message_valid_based_on_retention_period",  # noqa: B010
                is_message_valid_based_on_retention_period)


def map_processors_once() -> None:
    """An UpdateExpression's validation runs ten processors over its tree, each asking its processing map (node class
    -> method, a new dict at each call) for every node of the tree, twice, through ``isinstance`` against moto's
    abstract node classes (each a Python-level ``ABCMeta.__instancecheck__``): each processor keeps, by node class,
    the method its map gives that class (the first whose key the class is a subclass of, as ``process`` picks), and
    the walk asks it by the node's type."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    with _PATCH_LOCK:
        if getattr(DepthFirstTraverser.traverse_node_recursively, _MARK, False):
            return
        is_node: dict[type, bool] = {}
        no_hook = DepthFirstTraverser.pre_processing_of_child  # a no-op no processor overrides (one might)
        keys: dict[tuple[type, type], type | None] = {}  # (processor class, node class) -> its map's key
        unknown: Any = object()  # a pair not looked up yet (None: the processor handles no such node)

        def processor_for(self: Any, cls: type) -> Any:
            kept: dict[type, Any] | None = self.__dict__.get("_aijobs_map")
            if kept is None:  # (a processor's map has the same keys whatever the instance: its bound methods)
                kept = self.__dict__["_aijobs_map"] = self._processing_map()
            if (key := keys.get((type(self), cls), unknown)) is unknown:
                key = keys[(type(self), cls)] = next((k for k in kept if issubclass(cls, k)), None)
            return None if key is None else kept[key]

        def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
            cls = type(node)
            if (node_class := is_node.get(cls)) is None:
                node_class = is_node[cls] = issubclass(cls, Node)
            if not node_class:
                return node
            parent_node = node.parent
            if node.children is not None:
                hook = type(self).pre_processing_of_child
                for i, child_node in enumerate(node.children):
                    if hook is not no_hook:
                        hook(self, node, i)
                    self.traverse_node_recursively(child_node, i)
            if (processor := processor_for(self, cls)) is not None:
                node = processor(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
            return node

        def process(self: Any, node: Any) -> Any:
            method = processor_for(self, type(node))
            return None if method is None else method(node)

        setattr(traverse_node_recursively, _MARK, True)
        setattr(DepthFirstTraverser, "traverse_node_recursively", traverse_node_recursively)  # noqa: B010
        setattr(DepthFirstTraverser, "process", process)  # noqa: B010


class _KeepsNothing(list[Any]):
    def append(self, _: Any) -> None:
        pass


def forget_copies() -> None:
    """moto registers every instance of its models for its dashboard, forever: every item it copies (an UpdateItem
    copies the item twice, a Query or a GetItem its answers) and every message copy a receive hands out. A run of
    300 jobs grew the server by 26 MB, and a long ``make run`` without end. Items and messages are not registered."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.sqs.models import Message

    with _PATCH_LOCK:
        for model in (Item, Message):
            if not isinstance(getattr(model, "instances_tracked", None), _KeepsNothing):
                setattr(model, "instances_tracked", _KeepsNothing())  # noqa: B010


def project_directly() -> None:
    """Project an item by copying the attributes it keeps, and of a nested path (``request.priority``) the map
    members on its way (moto's way, a JSON round trip of the whole item, is kept for list elements). Idempotent."""
    from moto.dynamodb.models.dynamo_type import Item

    with _PATCH_LOCK:
        original = Item.project
        if getattr(original, _MARK, False):
            return

        @functools.wraps(original)
        def project(self: Item, projection_expressions: list[list[str]]) -> Item:
            if any("[" in name for path in projection_expressions for name in path):
                return original(self, projection_expressions)
            kept = _project(self.attrs, _paths_tree(projection_expressions))
            return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=kept)

        setattr(project, _MARK, True)
        setattr(Item, "project", project)  # noqa: B010


type _Paths = dict[str, "_Paths | None"]  # a name kept whole (None), or the names kept of the map it names


def _paths_tree(paths: list[list[str]]) -> _Paths:
    """``[["a"], ["r", "p"], ["r", "q"]]`` -> ``{"a": None, "r": {"p": None, "q": None}}`` (a whole map wins)."""
    tree: _Paths = {}
    for path in paths:
        node: _Paths | None = tree
        for depth, name in enumerate(path):
            if node is None:
                break  # an enclosing map is kept whole
            if depth == len(path) - 1:
                node[name] = None
            else:
                node = node.setdefault(name, {})
    return tree


def _project(attrs: Mapping[str, Any], tree: _Paths) -> dict[str, Any]:
    """Copies of the attributes (DynamoType) the tree names; of a map, only the members named under it."""
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType

    kept: dict[str, Any] = {}
    for name, inner in tree.items():
        if name not in attrs:
            continue
        value = attrs[name]
        if inner is None:
            kept[name] = copy.deepcopy(value)
        elif value.type == "M" and (members := _project(value.value, inner)):
            kept[name] = DynamoType({"M": members})
    return kept


def validate_updates_once() -> None:
    """Two of an UpdateExpression's checks made once on its whole tree, and the tree copied from a pickle of it.

    The parser nests an ``UpdateExpression`` node per action, and moto's ActionCountValidator and
    OverlappingPathsValidator ran their check at each of them, each a walk of the subtree below it: about 75 walks
    for a job's terminal write (SET of 14 attributes, REMOVE of 5), a third of its UpdateItem. The whole tree holds
    every clause and path of any subtree, so a subtree fails a check only if the whole tree fails it: the check is
    made on the whole tree, and when it fails, moto's own walk runs and raises moto's own error. The Validator's
    deep copy of the tree (a fifth of the UpdateItem) is made by unpickling the tree's pickle, kept on it."""
    import copy
    import pickle

    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node, UpdateExpression  # type: ignore[attr-defined]

    with _PATCH_LOCK:
        if getattr(getattr(validators, "deepcopy"), _MARK, False):  # noqa: B009  (not re-exported)
            return
        for checker in (validators.ActionCountValidator, validators.OverlappingPathsValidator):
            walk = checker.traverse

            def traverse(self: Any, node: Any, walk: Any = walk) -> Any:
                if isinstance(node, UpdateExpression):
                    try:
                        self.process(node)  # the check of the whole tree; it changes nothing
                    except Exception:  # moto's own walk raises moto's own error
                        return walk(self, node)
                    return node
                return walk(self, node)

            setattr(checker, "traverse", traverse)  # noqa: B010

        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            if not isinstance(value, Node):
                return copy.deepcopy(value, memo)
            pickled = value.__dict__.get("_aijobs_pickled")
            if pickled is None:  # a parsed tree is kept by its text (parse_update_expressions_once): pickled once
                pickled = value.__dict__["_aijobs_pickled"] = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
            return pickle.loads(pickled)  # moto's own tree, pickled here

        setattr(deepcopy, _MARK, True)
        setattr(validators, "deepcopy", deepcopy)  # noqa: B010


def bound_item_sizes() -> None:
    """moto checks an item's 400 KB limit at each attribute it sets, by summing the sizes of all of the item's
    attributes (a walk of every value in Python): a write of n attributes walks the item n times, a quarter of a
    job's terminal UpdateItem. A size is at most four bytes a character of the value's ``repr`` (UTF-8 takes at most
    four bytes a code point; a number's size is its digits, a binary's its bytes, whose base64 the repr shows; a map's
    its keys' and values'), so while four times the length of the item's ``repr`` with the new attribute is under the
    limit, so is its size; moto's own sum runs (and raises moto's own error) only past that bound."""
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict

    with _PATCH_LOCK:
        check = LimitedSizeDict.__setitem__
        if getattr(check, _MARK, False):
            return

        def __setitem__(self: LimitedSizeDict, key: str, value: Any) -> None:
            if 4 * (len(repr(self)) + len(repr(key)) + len(repr(value))) <= ITEM_SIZE_CHECKED:
                dict.__setitem__(self, key, value)
            else:
                check(self, key, value)

        setattr(__setitem__, _MARK, True)
        setattr(LimitedSizeDict, "__setitem__", __setitem__)  # noqa: B010


def send_messages_directly() -> None:
    """A message sent to a queue asks the queue's ContentBasedDeduplication through the queue's ``attributes``,
    which work out every attribute, its three counts of messages among them (each a pass over all the queue's
    messages), for each message: a SendMessageBatch of ten to a queue of 300 took 21 ms. While a message is sent,
    ``attributes`` answers that one attribute, as the full answer has it (a FIFO queue's only)."""
    from moto.sqs.models import Queue, SQSBackend

    with _PATCH_LOCK:
        every: property = Queue.__dict__["attributes"]
        if getattr(every.fget, _MARK, False):
            return
        sending = threading.local()

        def attributes(self: Queue) -> dict[str, Any]:
            if not getattr(sending, "now", False):
                return every.fget(self)  # type: ignore[misc]
            if not self.fifo_queue:
                return {}
            value = self.content_based_deduplication  # type: ignore[attr-defined]
            return {"ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value}

        setattr(attributes, _MARK, True)
        setattr(Queue, "attributes", property(attributes))  # noqa: B010
        for name in ("send_message", "send_message_batch"):
            send = getattr(SQSBackend, name)

            @functools.wraps(send)
            def sent(self: SQSBackend, *args: Any, send: Any = send, **kwargs: Any) -> Any:
                before, sending.now = getattr(sending, "now", False), True
                try:
                    return send(self, *args, **kwargs)
                finally:
                    sending.now = before

            setattr(SQSBackend, name, sent)


def make_moto_faster() -> None:
    """The shortcuts of this module (see its docstring). Idempotent and process-wide."""
    forget_copies()
    bound_item_sizes()
    validate_updates_once()
    send_messages_directly()
    serialize_items_directly()
    parse_update_expressions_once()
    map_processors_once()
    check_retention_directly()
    project_directly()

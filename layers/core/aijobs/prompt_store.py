"""DynamoDB access for the prompt registry: prompts and their versions on the tenant's partition (dynamo.py).

A version is created in one transaction with the prompt's ``latest_version`` counter, on the condition that the
counter is still what was read: two concurrent changes can never make the same version number (the loser reads
again and takes the next one). A label moves in one conditional write of the prompt item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from aijobs.dynamo import (
    PROMPT_PREFIX,
    Page,
    conditional,
    prompt_key,
    prompt_version_key,
    prompt_versions_prefix,
    query_index,
    tenant_partition,
    to_attributes,
    update_request,
)
from aijobs.models.prompts import LabelTarget, Prompt, PromptVersion
from aijobs.observability import logger


class VersionRace(Exception):
    """Another change took the version number (or the prompt went): read again and retry."""


def _prompt_item(prompt: Prompt) -> dict[str, Any]:
    return {**prompt_key(prompt.tenant, prompt.id), **to_attributes(prompt)}


def _version_item(tenant: str, version: PromptVersion) -> dict[str, Any]:
    return {**prompt_version_key(tenant, version.prompt_id, version.version), "tenant": tenant,
            **to_attributes(version)}


def _is_cancelled(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "TransactionCanceledException"


class PromptStore:
    def __init__(self, *, table: Any) -> None:
        self._table = table

    def create_prompt(self, prompt: Prompt, first: PromptVersion) -> None:
        """The prompt and its version 1, in one transaction."""
        self._table.meta.client.transact_write_items(TransactItems=[
            {"Put": {"TableName": self._table.name, "Item": _prompt_item(prompt),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self._table.name, "Item": _version_item(prompt.tenant, first),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ])

    def add_version(self, prompt: Prompt, version: PromptVersion, *, labels: Iterable[str], updated_at: int) -> None:
        """Store ``version`` (numbered ``prompt.latest_version + 1``), the counter moved on and ``labels`` pointed at
        it, in one transaction; ``VersionRace`` if the counter moved meanwhile (or the prompt is gone)."""
        target = to_attributes(LabelTarget(version=version.version))
        names = {f"#l{i}": label for i, label in enumerate(labels)}
        sets = ", ".join(f"#labels.{name} = :target" for name in names)
        update = {
            "TableName": self._table.name, "Key": prompt_key(prompt.tenant, prompt.id),
            "UpdateExpression": "SET #latest = :n, #updated = :now" + (f", {sets}" if sets else ""),
            "ConditionExpression": "attribute_exists(pk) AND #latest = :read",
            "ExpressionAttributeNames": {"#latest": "latest_version", "#updated": "updated_at",
                                         **({"#labels": "labels"} if names else {}), **names},
            "ExpressionAttributeValues": {":n": version.version, ":read": prompt.latest_version, ":now": updated_at,
                                          **({":target": target} if names else {})},
        }
        try:
            self._table.meta.client.transact_write_items(TransactItems=[
                {"Update": update},
                {"Put": {"TableName": self._table.name, "Item": _version_item(prompt.tenant, version),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
        except ClientError as exc:
            if _is_cancelled(exc):
                raise VersionRace from None
            raise

    def get_prompt(self, tenant: str, prompt_id: str) -> Prompt | None:
        # Consistent: a label moved a moment ago decides the very next job.
        item = self._table.get_item(Key=prompt_key(tenant, prompt_id), ConsistentRead=True).get("Item")
        return Prompt.model_validate(item) if item else None

    def get_version(self, tenant: str, prompt_id: str, version: int) -> PromptVersion | None:
        # Consistent too: a version made a moment ago (and a label moved to it) must be found by the next job.
        item = self._table.get_item(Key=prompt_version_key(tenant, prompt_id, version),
                                    ConsistentRead=True).get("Item")
        return PromptVersion.model_validate(item) if item else None

    def list_prompts(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Prompt]:
        """A tenant's prompts, newest first."""
        page = query_index(self._table, index=None, partition=tenant_partition(tenant), sort_prefix=PROMPT_PREFIX,
                           limit=limit, cursor=cursor)
        return Page([Prompt.model_validate(item) for item in page.items], page.next_cursor)

    def list_versions(self, *, tenant: str, prompt_id: str, limit: int, cursor: str | None) -> Page[PromptVersion]:
        """A prompt's versions, newest first."""
        page = query_index(self._table, index=None, partition=tenant_partition(tenant),
                           sort_prefix=prompt_versions_prefix(prompt_id), limit=limit, cursor=cursor)
        return Page([PromptVersion.model_validate(item) for item in page.items], page.next_cursor)

    def set_label(self, tenant: str, prompt_id: str, label: str, target: LabelTarget, *, max_labels: int,
                  updated_at: int) -> bool:
        """Point ``label`` at ``target`` in one write: on the conditions that the prompt exists, that every version
        named exists (versions are never deleted one by one: a number up to the latest exists), and that a new
        label keeps the prompt within ``max_labels``. False if a condition does not hold."""
        request = update_request(
            set={"updated_at": updated_at},
            condition="attribute_exists(pk) AND #latest_version >= :highest "
                      "AND (attribute_exists(#labels.#label) OR size(#labels) < :max)",
            values={":highest": max(target.versions()), ":max": max_labels})
        request["UpdateExpression"] += ", #labels.#label = :target"
        request["ExpressionAttributeNames"] |= {"#labels": "labels", "#label": label,
                                                "#latest_version": "latest_version"}
        request["ExpressionAttributeValues"][":target"] = to_attributes(target)
        return conditional(self._table.update_item, Key=prompt_key(tenant, prompt_id), **request) is not None

    def remove_label(self, tenant: str, prompt_id: str, label: str, *, updated_at: int) -> bool:
        """False if there is no such prompt or label."""
        request = update_request(set={"updated_at": updated_at},
                                 condition="attribute_exists(pk) AND attribute_exists(#labels.#label)")
        request["UpdateExpression"] += " REMOVE #labels.#label"
        request["ExpressionAttributeNames"] |= {"#labels": "labels", "#label": label}
        return conditional(self._table.update_item, Key=prompt_key(tenant, prompt_id), **request) is not None

    def delete_prompt(self, tenant: str, prompt_id: str) -> None:
        """The prompt item first (from then on nothing resolves it), then its versions, page by page."""
        self._table.delete_item(Key=prompt_key(tenant, prompt_id))
        from boto3.dynamodb.conditions import Key as KeyCondition

        query: dict[str, Any] = {
            "KeyConditionExpression": KeyCondition("pk").eq(tenant_partition(tenant))
            & KeyCondition("sk").begins_with(prompt_versions_prefix(prompt_id)),
            "ProjectionExpression": "pk, sk", "ConsistentRead": True}
        with self._table.batch_writer() as batch:
            while True:
                answer = self._table.query(**query)
                for item in answer["Items"]:
                    batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                if "LastEvaluatedKey" not in answer:
                    break
                query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def count_jobs(self, tenant: str, counts: dict[tuple[str, int], int]) -> None:
        """Add each (prompt, version)'s new jobs to its version's count; best effort: a count that fails is logged
        and the jobs stand (a version deleted meanwhile is not written again)."""
        for (prompt_id, version), jobs in counts.items():
            try:
                conditional(self._table.update_item, Key=prompt_version_key(tenant, prompt_id, version),
                            **update_request(add={"jobs": jobs}, condition="attribute_exists(pk)"))
            except Exception:
                logger.exception("prompt version's job count not updated",
                                 extra={"prompt_id": prompt_id, "version": version})

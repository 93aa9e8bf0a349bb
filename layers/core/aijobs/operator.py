"""Operator commands against a deployed stack (uses your AWS credentials and the stack's table name).

    AIJOBS_JOBS_TABLE=<JobsTableName output> python -m aijobs.admin create-key --tenant acme

The same operations as the admin API (/v1/admin/), through the same TenantService methods, audited with the actor
``operator``. Answers are JSON on stdout, but create-key's, which is the key alone (shown once).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from pydantic import BaseModel, ValidationError

from aijobs.errors import AijobsError
from aijobs.models.tenants import TENANT_PATTERN, TenantLimits
from aijobs.services import get_services


def _tenant(value: str) -> str:
    if not re.fullmatch(TENANT_PATTERN, value):
        raise argparse.ArgumentTypeError("must be 1-64 letters, digits, '_', '.' or '-'")
    return value


def _limits(value: str) -> TenantLimits:
    try:
        return TenantLimits.model_validate_json(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"not valid limits: {exc.errors()[0]['msg']}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aijobs.admin")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="create an API key for a tenant (creating the tenant with its "
                                                    "first key); the key is printed once, its id on stderr")
    create.add_argument("--tenant", required=True, type=_tenant)
    listing = commands.add_parser("list-keys", help="a tenant's keys: ids, prefixes, creation times; never a key")
    listing.add_argument("--tenant", required=True, type=_tenant)
    revoke = commands.add_parser("revoke-key", help="revoke a key by id (other API processes within the key cache "
                                                    "time, AIJOBS_API_KEY_CACHE_S)")
    revoke.add_argument("--id", required=True, dest="key_id")
    get_limits = commands.add_parser("get-limits", help="a tenant's limits, as set and in force")
    get_limits.add_argument("--tenant", required=True, type=_tenant)
    set_limits = commands.add_parser("set-limits", help="replace a tenant's limits; fields left out or null take "
                                                        "the stack's defaults")
    set_limits.add_argument("--tenant", required=True, type=_tenant)
    set_limits.add_argument("--limits", required=True, type=_limits, metavar="JSON",
                            help='e.g. \'{"requests_per_minute": 120, "allowed_models": ["gpt-4o-mini"]}\'')
    delete = commands.add_parser("delete-tenant", help="delete a tenant: keys, schedules, limits, signing secrets "
                                                       "(its jobs expire by retention)")
    delete.add_argument("--tenant", required=True, type=_tenant)
    delete.add_argument("--yes", action="store_true", required=True, help="required: the deletion cannot be undone")
    audit = commands.add_parser("audit", help="admin actions, newest first")
    audit.add_argument("--limit", type=int, default=20, choices=range(1, 101), metavar="1-100")
    audit.add_argument("--cursor")
    return parser


def _print(value: BaseModel | dict[str, Any]) -> None:
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    print(json.dumps(data, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tenants = get_services().tenants
    try:
        if args.command == "create-key":
            created = tenants.create_key(args.tenant, actor="operator")
            print(f"key {created.id} for tenant {created.tenant}", file=sys.stderr)
            print(created.key)  # shown once; only its SHA-256 is stored
        elif args.command == "list-keys":
            keys, cursor = [], None
            while True:
                page = tenants.list_keys(args.tenant, limit=100, cursor=cursor)
                keys += [key.model_dump(mode="json") for key in page.items]
                if (cursor := page.next_cursor) is None:
                    break
            _print({"data": keys})
        elif args.command == "revoke-key":
            _print(tenants.revoke_key(args.key_id, actor="operator"))
        elif args.command == "get-limits":
            _print(tenants.tenant_limits(args.tenant))
        elif args.command == "set-limits":
            _print(tenants.put_tenant_limits(args.tenant, args.limits, actor="operator"))
        elif args.command == "delete-tenant":
            tenants.delete_tenant(args.tenant, actor="operator")
            print(f"tenant {args.tenant} deleted; its jobs expire by the stack's retention", file=sys.stderr)
        else:
            audit = tenants.audit(limit=args.limit, cursor=args.cursor)
            _print({"data": [entry.model_dump(mode="json") for entry in audit.items], "next_cursor": audit.next_cursor})
    except AijobsError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0

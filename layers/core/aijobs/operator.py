"""Operator commands against a deployed stack (uses your AWS credentials and the stack's table name).

    AIJOBS_JOBS_TABLE=<JobsTableName output> python -m aijobs.admin create-key --tenant acme
"""

from __future__ import annotations

import argparse
import re

from aijobs.models.tenants import TENANT_PATTERN
from aijobs.services import get_services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aijobs.admin")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="create an API key for a tenant; the key is printed once")
    create.add_argument("--tenant", required=True)
    args = parser.parse_args(argv)
    if not re.fullmatch(TENANT_PATTERN, args.tenant):
        parser.error("--tenant must be 1-64 letters, digits, '_', '.' or '-'")
    print(get_services().tenants.add_api_key(args.tenant))  # shown once; only its SHA-256 is stored
    return 0

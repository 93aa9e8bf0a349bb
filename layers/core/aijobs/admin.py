"""``python -m aijobs.admin``: the documented entry point of the operator commands (aijobs.operator)."""

from aijobs.operator import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m trials.catalog [KIND ...]``: print the documentation tables (all by default)."""

from __future__ import annotations

import sys

from trials.catalog.tables import TABLES


def main(argv: list[str]) -> int:
    kinds = argv or list(TABLES)
    unknown = [k for k in kinds if k not in TABLES]
    if unknown:
        print(f"trials.catalog: unknown table {unknown[0]!r}; one of {sorted(TABLES)}", file=sys.stderr)
        return 2
    print("\n\n".join(f"<!-- {k} -->\n{TABLES[k]()}" for k in kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``python -m trials.catalog [KIND ...]``: print the documentation tables (all by default);
``python -m trials.catalog --update [FILE ...]``: rewrite them where each FILE has them (by
default in every document of :data:`~trials.catalog.tables.DOCUMENTS`, from the repository root)."""

from __future__ import annotations

import sys
from pathlib import Path

from trials.catalog.tables import DOCUMENTS, TABLES, update_tables


def main(argv: list[str]) -> int:
    if argv[:1] == ["--update"]:
        root = Path(__file__).resolve().parents[2]
        for name in argv[1:] or [str(root / doc) for doc in DOCUMENTS]:
            path = Path(name)
            path.write_text(update_tables(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    kinds = argv or list(TABLES)
    unknown = [k for k in kinds if k not in TABLES]
    if unknown:
        print(f"trials.catalog: unknown table {unknown[0]!r}; one of {sorted(TABLES)}", file=sys.stderr)
        return 2
    print("\n\n".join(f"<!-- {k} -->\n{TABLES[k]()}" for k in kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write the Customer and PricePlan JSON Schemas, generated from the models, into docs/schemas.

    python scripts/generate_schemas.py            # (re)write docs/schemas/*.schema.json
    python scripts/generate_schemas.py --check    # exit 1, naming them, if any is stale
    python scripts/generate_schemas.py --out DIR  # write elsewhere

`make schemas` runs the first form; tests/unit/test_generated_schemas.py fails when the
committed files differ from what this writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.models.json_schema import schema_files

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMAS_DIR, help="directory to write into (default docs/schemas)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is missing or stale")
    args = parser.parse_args(argv)
    files = schema_files()
    if args.check:
        stale = [name for name, text in files.items() if _read(args.out / name) != text]
        for name in stale:
            print(f"{args.out / name} is not current: run `make schemas`", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(args.out / name)
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())

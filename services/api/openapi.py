"""`python -m services.api.openapi write|check`: the committed OpenAPI document and its drift check."""

import json
import sys
from pathlib import Path
from typing import Any

from services.api.app import create_app
from services.core.config import Settings

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def render() -> str:
    schema: dict[str, Any] = create_app(Settings()).openapi()
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else "check"
    current = render()
    if action == "write":
        DOCUMENT.write_text(current, encoding="utf-8")
        return 0
    if DOCUMENT.exists() and DOCUMENT.read_text(encoding="utf-8") == current:
        return 0
    sys.stderr.write(f"{DOCUMENT} differs from the app: run `make openapi` and commit it.\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

"""The OpenAPI document is what front-end teams read: every operation and schema is described."""

from typing import Any

from fastapi import FastAPI


def test_every_operation_is_tagged_and_summarised(app: FastAPI) -> None:
    schema: dict[str, Any] = app.openapi()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not operation.get("summary") or not operation.get("tags")
    ]
    assert missing == []


def test_every_request_body_schema_has_an_example(app: FastAPI) -> None:
    schema: dict[str, Any] = app.openapi()
    components = schema["components"]["schemas"]
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            ref = body["schema"].get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if name and not components[name].get("examples"):
                missing.append(f"{method.upper()} {path}: {name}")
    assert missing == []

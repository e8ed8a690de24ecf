"""The OpenAPI document is what front-end teams read: every operation and schema is described."""

from typing import Any

from fastapi import FastAPI

from services.api.schemas import PatchModel


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


def _operations(schema: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        operation["operationId"]: (f"{method.upper()} {path}", operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }


def _pointed(schema: dict[str, Any] | None, pointer: str, components: dict[str, Any]) -> bool:
    for step in pointer.strip("/").split("/"):
        while schema is not None and "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        if schema is None:
            return False
        schema = schema.get("items") if step.isdigit() else schema.get("properties", {}).get(step)
    return schema is not None


def test_every_operation_on_a_record_is_the_target_of_a_link(app: FastAPI) -> None:
    """Clients and the fuzz's stateful phase follow links from the answer that holds an id to
    the operations that take it: an operation no link reaches is only ever tried on a 404."""
    schema: dict[str, Any] = app.openapi()
    operations = _operations(schema)
    supplied: dict[str, set[str]] = {}
    for _, operation in operations.values():
        for answer in operation["responses"].values():
            for link in answer.get("links", {}).values():
                names = supplied.setdefault(link["operationId"], set())
                names.update(link.get("parameters", {}))
    unreached = [
        f"{label} ({name})"
        for operation_id, (label, operation) in operations.items()
        for name in (p["name"] for p in operation.get("parameters", []) if p["in"] == "path")
        if name not in supplied.get(operation_id, set())
    ]
    assert unreached == []


def test_every_link_names_an_operation_and_a_field_that_exist(app: FastAPI) -> None:
    schema: dict[str, Any] = app.openapi()
    components = schema["components"]["schemas"]
    operations = _operations(schema)
    broken = []
    for label, operation in operations.values():
        for status, answer in operation["responses"].items():
            body = answer.get("content", {}).get("application/json", {}).get("schema")
            for name, link in answer.get("links", {}).items():
                where = f"{label} {status} -> {name}"
                target = operations.get(link["operationId"])
                if target is None:
                    broken.append(f"{where}: no such operation")
                    continue
                parameters = {p["name"] for p in target[1].get("parameters", [])}
                request = target[1].get("requestBody", {}).get("content", {})
                fields = request.get("application/json", {}).get("schema")
                values = {**link.get("parameters", {}), **link.get("requestBody", {})}
                for key in link.get("parameters", {}):
                    if key not in parameters:
                        broken.append(f"{where}: {target[0]} takes no parameter {key}")
                for key in link.get("requestBody", {}):
                    if not _pointed(fields, f"/{key}", components):
                        broken.append(f"{where}: {target[0]} takes no body field {key}")
                for value in values.values():
                    pointer = value.removeprefix("$response.body#")
                    if pointer == value or not _pointed(body, pointer, components):
                        broken.append(f"{where}: {value} is not in the answer")
    assert broken == []


def _subclasses(cls: type[PatchModel]) -> list[type[PatchModel]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_patch_fields_that_cannot_be_cleared_do_not_offer_null(app: FastAPI) -> None:
    components = app.openapi()["components"]["schemas"]
    patches = _subclasses(PatchModel)
    assert {"ChannelUpdate", "CustomerUpdate", "TicketUpdate"} <= {p.__name__ for p in patches}
    for patch in patches:
        assert patch.NON_NULL, patch.__name__
        assert set(patch.NON_NULL) <= set(patch.model_fields), patch.__name__
        properties = components[patch.__name__]["properties"]
        for name in patch.NON_NULL:
            assert "null" not in str(properties[name]), (patch.__name__, name)
    # Fields that null clears still say so.
    assert {"type": "null"} in components["ChannelUpdate"]["properties"]["region"]["anyOf"]

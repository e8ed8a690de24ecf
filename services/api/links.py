"""OpenAPI links: which answer supplies the ids that another operation takes.

Derived from the route table:

* an operation on `/v1/{collection}/{x_id}…` takes the `id` that `POST /v1/{collection}`
  answers with, or, for records the API does not create (alerts), the `id` of the first item
  that `GET /v1/{collection}` lists; `EXTRA` names the ids that come from elsewhere (jobs,
  webhook deliveries);
* a create whose body names another record by `{name}_id` takes the `id` that
  `POST /v1/{name}s` answers with (a ticket's `customer_id`, a customer's `channel_id`).

Clients and API testers follow them from a create to the record it made.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

JSON = "application/json"


@dataclass(frozen=True)
class Source:
    """An answer that carries an id: the operation, its status code and the body field."""

    method: str
    path: str
    status: str
    pointer: str


# Ids that the collection the path names does not hand out, by target path prefix and parameter.
EXTRA: dict[tuple[str, str], tuple[Source, ...]] = {
    ("/v1/jobs/", "job_id"): (
        Source("post", "/v1/scoring/recompute", "202", "/id"),
        Source("post", "/v1/imports", "202", "/id"),
        Source("post", "/v1/reports/refresh", "202", "/id"),
    ),
    ("/v1/webhook-deliveries/", "delivery_id"): (
        Source("post", "/v1/webhooks/{webhook_id}/test", "202", "/delivery_id"),
        Source("get", "/v1/webhooks/{webhook_id}/deliveries", "200", "/items/0/id"),
    ),
}


def document_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Add a link to every operation that takes a path id, and to every create that takes
    the id of another record in its body, from each answer that supplies it."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    components: dict[str, Any] = schema.get("components", {}).get("schemas", {})

    def link(source: Source, target: dict[str, Any], name: str, value: dict[str, Any]) -> None:
        answer = paths[source.path][source.method]["responses"][source.status]
        body = answer.get("content", {}).get(JSON, {}).get("schema")
        if not _field(body, source.pointer, components):
            return
        # One link per target: a second id from the same answer joins the first.
        links = answer.setdefault("links", {})
        entry = links.pop(target["operationId"], {"operationId": target["operationId"]})
        said = [entry.pop("description", ""), _description(name, source.pointer)]
        for key, values in value.items():
            entry[key] = {**entry.get(key, {}), **values}
        links[target["operationId"]] = {**entry, "description": " ".join(filter(None, said))}

    for path, operations in paths.items():
        for method, operation in operations.items():
            parameters = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            for name in parameters:
                for source in _path_sources(paths, path, name):
                    link(source, operation, name, {"parameters": {name: _expression(source)}})
            if method == "post" and not parameters:
                for name in _body_references(operation, components):
                    for source in _creates(paths, f"/v1/{name.removesuffix('_id')}s"):
                        link(source, operation, name, {"requestBody": {name: _expression(source)}})
    return schema


def _expression(source: Source) -> str:
    return f"$response.body#{source.pointer}"


def _description(name: str, pointer: str) -> str:
    *where, field = pointer.strip("/").split("/")
    of = "the first item of this answer" if where else "this answer"
    return f"`{name}` is the `{field}` of {of}."


def _path_sources(paths: dict[str, dict[str, Any]], path: str, name: str) -> Iterator[Source]:
    for (prefix, parameter), sources in EXTRA.items():
        if parameter == name and path.startswith(prefix):
            yield from sources
            return
    collection = path.split("/{", 1)[0]
    if not path.startswith(f"{collection}/{{{name}}}"):
        return
    if "post" in paths.get(collection, {}):
        yield from _creates(paths, collection)
    elif "get" in paths.get(collection, {}):
        yield Source("get", collection, "200", "/items/0/id")


def _creates(paths: dict[str, dict[str, Any]], collection: str) -> Iterator[Source]:
    create = paths.get(collection, {}).get("post")
    if create is not None:
        for status in create["responses"]:
            if status.startswith("2"):
                yield Source("post", collection, status, "/id")


def _body_references(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    body = operation.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
    properties = (_resolve(body, components) or {}).get("properties", {})
    return [name for name in properties if name.endswith("_id")]


def _field(schema: dict[str, Any] | None, pointer: str, components: dict[str, Any]) -> bool:
    """Whether the schema has the field the JSON pointer names (`/id`, `/items/0/id`)."""
    for step in pointer.strip("/").split("/"):
        schema = _resolve(schema, components)
        if schema is None:
            return False
        schema = schema.get("items") if step.isdigit() else schema.get("properties", {}).get(step)
    return schema is not None


def _resolve(schema: dict[str, Any] | None, components: dict[str, Any]) -> dict[str, Any] | None:
    while schema is not None and "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1])
    return schema

"""The catalog HTTP API: create, read, replace and delete customers, meters, price plans
and subscriptions (issue 3).

Every write is judged against a view that has just been synced (`view.sync()`), with the
same rules `metering catalog apply` uses (`shared.catalog.entity_problems`), plus the
referential rules only a change to an existing catalog can break (deleting a meter a
plan prices, a plan a subscription uses, a customer that has subscriptions). It is then
written to the compacted catalog topic, and the answer waits until this service's view
has applied it, so a following GET, or a measurement for a new customer, sees it.

Errors have the measurement API's shape: `{"error": ..., "errors": [{"field", "reason"}]}`
for anything about the request's content (400, 404, 409), `{"error", "reason"}` for a
request-level failure (503, 504), as 401 and the measurement API's 503 are.

Bodies are validated here, not by FastAPI, so the error format is ours and the seed
schemas' semantics (numbers are never strings, no explicit nulls, ...) are exactly what
the models enforce; the models' JSON Schemas are declared in `openapi_extra` so
/openapi.json still documents each request body.

Names may hold any character but control characters: '/', '%', quotes, unicode. A client
percent-encodes them in the path; routing matches on the path as sent (raw_path), so an
encoded '/' stays inside its segment instead of splitting it.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from starlette.concurrency import run_in_threadpool

from services.infra.catalog_view import Entity, entity_key, publish
from services.ingest.routing import RawPathRoute
from services.ingest.validation import BodyError, parse_body, too_deep
from services.settings import Settings
from shared.catalog import Catalog, entity_problems
from shared.errors import field_errors
from shared.models import Customer, Meter, PricePlan, Subscription
from shared.models.base import SeedModel
from shared.models.json_types import UtcDateTime

log = logging.getLogger("metering.ingest.catalog")

REQUESTS = Counter("metering_catalog_requests_total", "Catalog API requests", ["kind", "method", "status"])

Problem = tuple[str, str]
Change = tuple[str, str, Entity | None]

SYNC_TIMEOUT = 10.0
VISIBLE_TIMEOUT = 10.0
RETRY_AFTER_SECONDS = "5"
MAX_LISTED = 10  # dependents named in a 409 reason
# Deepest nesting of arrays and objects in a body: a catalog entity needs about six
# levels; pydantic's JSON parser, which reads the stored entity back, stops near 200.
MAX_JSON_DEPTH = 32


class CatalogReader(Protocol):
    """What the routes need of a catalog view (CatalogView in production)."""

    catalog: Catalog

    def sync(self, timeout: float = 10.0) -> bool: ...


class CatalogWriter(Protocol):
    """Writes catalog changes (entity, or None for a delete) durably, or raises."""

    def write(self, changes: list[Change]) -> None: ...


class KafkaCatalogWriter:
    """The production writer: the compacted catalog topic, acks=all, waited for."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self._settings = settings
        self._bootstrap = bootstrap

    def write(self, changes: list[Change]) -> None:
        publish(self._settings, self._bootstrap, changes)


@dataclass(frozen=True)
class _Kind:
    kind: str  # catalog kind = URL segment
    label: str  # in messages: "a customer named 'x'"
    model: type[Customer] | type[Meter] | type[PricePlan] | type[Subscription]


CUSTOMERS = _Kind("customers", "customer", Customer)
METERS = _Kind("meters", "meter", Meter)
PRICE_PLANS = _Kind("price_plans", "price plan", PricePlan)
SUBSCRIPTIONS = _Kind("subscriptions", "subscription", Subscription)


@dataclass(frozen=True)
class Refusal:
    """A write or read that is answered with an error instead."""

    status: int
    error: str
    problems: Sequence[Problem] = ()
    reason: str | None = None

    def response(self) -> JSONResponse:
        if self.reason is not None:
            body: dict[str, Any] = {"error": self.error, "reason": self.reason}
        else:
            body = {"error": self.error, "errors": [{"field": f, "reason": r} for f, r in self.problems]}
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if self.status == 503 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


# ---- routing on the raw path ----------------------------------------------------


# ---- the router -----------------------------------------------------------------


def catalog_router(
    settings: Settings,
    view: CatalogReader,
    writer: CatalogWriter,
    *,
    sync_timeout: float = SYNC_TIMEOUT,
    visible_timeout: float = VISIBLE_TIMEOUT,
) -> APIRouter:
    router = APIRouter(route_class=RawPathRoute, tags=["catalog"])
    # One write at a time per process: judging and writing must not interleave, or two
    # POSTs of one name could both pass the uniqueness check. Writers in other processes
    # are ordered by the topic (last write wins), as `metering catalog apply` is.
    write_lock = threading.Lock()

    # ---- shared steps ------------------------------------------------------------

    # An entity travels as one catalog record, so a body larger than a record cannot be
    # written whatever it holds: refused as it streams in, before it is parsed.
    body_limit = min(settings.max_body_bytes, settings.max_record_bytes)

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > body_limit:
            raise _BodyProblem(413, "body too large", f"at most {body_limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > body_limit:
                raise _BodyProblem(413, "body too large", f"at most {body_limit} bytes")
            chunks.append(chunk)
        try:
            parsed = parse_body(b"".join(chunks), allow_constants=False)
        except BodyError as error:
            raise _BodyProblem(400, "invalid body", str(error)) from error
        # Unknown fields are kept and stored as sent, so their nesting must stay well
        # within what pydantic's JSON parser (and json.dumps below) can walk back.
        if too_deep(parsed, MAX_JSON_DEPTH):
            raise _BodyProblem(400, "invalid body", f"body is nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            # "\ud800" is valid JSON text but no character: it could not be written as UTF-8.
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as error:
            raise _BodyProblem(400, "invalid body", "body is not valid JSON: it holds an unpaired UTF-16 surrogate") from error
        return parsed

    def record_too_large(kind: _Kind, entity: Entity) -> Refusal | None:
        """A body within the limit can still encode larger (1e300 is written in 301 digits)."""
        size = len(entity_key(kind.kind, _key_of(entity))) + len(entity.model_dump_json(exclude_none=True).encode())
        if size <= settings.max_record_bytes:
            return None
        reason = f"the {kind.label} encodes to {size} bytes; a catalog record holds at most {settings.max_record_bytes}"
        return Refusal(413, "entity too large", [("body", reason)])

    def judge_and_write(kind: _Kind, key: str, entity: Entity | None, judge: Callable[[Catalog], Refusal | None]) -> Refusal | None:
        with write_lock:
            if not view.sync(sync_timeout):
                return Refusal(503, "unavailable", reason="the catalog could not be read up to date; retry")
            refusal = _judged(judge, view.catalog)
            if refusal is not None:
                return refusal
            try:
                writer.write([(kind.kind, key, entity)])
            except Exception:  # any broker or client failure: nothing is known to be written
                log.exception("catalog write of %s/%s failed", kind.kind, key)
                return Refusal(503, "unavailable", reason="the catalog change was not acknowledged by the broker; retry")
            if not visible(kind, key, entity):
                return Refusal(
                    504, "not yet visible",
                    reason=f"the change was written but this service's catalog view did not apply it within "
                    f"{visible_timeout:g}s; read it back before retrying",
                )
        return None

    def visible(kind: _Kind, key: str, entity: Entity | None) -> bool:
        """Read-your-writes: wait until the view holds what was written (None: nothing)."""
        deadline = time.monotonic() + visible_timeout
        while True:
            if view.sync(max(deadline - time.monotonic(), 0.1)) and _table(view.catalog, kind.kind).get(key) == entity:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    async def write(kind: _Kind, key: str, entity: Entity | None, judge: Callable[[Catalog], Refusal | None]) -> Refusal | None:
        return await run_in_threadpool(judge_and_write, kind, key, entity, judge)

    async def find(kind: _Kind, key: str) -> Entity | None:
        found = _table(view.catalog, kind.kind).get(key)
        if found is None:
            # Written a moment ago through another instance? Catch up once, then answer.
            await run_in_threadpool(view.sync, sync_timeout)
            found = _table(view.catalog, kind.kind).get(key)
        return found

    def answer(kind: _Kind, method: str, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        REQUESTS.labels(kind.kind, method, str(status)).inc()
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(body, status_code=status, headers=headers)

    def refuse(kind: _Kind, method: str, refusal: Refusal) -> Response:
        REQUESTS.labels(kind.kind, method, str(refusal.status)).inc()
        return refusal.response()

    async def parsed_body(
        kind: _Kind, request: Request, fill: Mapping[str, Any] | None = None, path_name: str | None = None
    ) -> Entity | Refusal:
        """The body as an entity of `kind`, or why not.

        For a PUT, `path_name` is the name in the path, which the body must repeat or
        leave out, and `fill` supplies the identity fields a body left out.
        """
        try:
            raw = await read_json(request)
        except _BodyProblem as problem:
            return Refusal(problem.status, problem.error, [("body", problem.reason)])
        if not isinstance(raw, dict):
            return Refusal(400, f"invalid {kind.label}", [("body", "must be a JSON object")])
        if path_name is not None:
            if "name" in raw and raw["name"] != path_name:
                return Refusal(400, f"invalid {kind.label}", [
                    ("name", f"must equal the name in the path ({path_name!r}) or be absent"),
                ])
            raw["name"] = path_name
        for field, value in (fill or {}).items():
            raw.setdefault(field, value)
        try:
            entity = kind.model.model_validate(raw)
        except ValidationError as error:
            return Refusal(400, f"invalid {kind.label}", field_errors(error))
        return record_too_large(kind, entity) or entity

    # ---- customers, meters, price plans: addressed by name ----------------------

    def named_routes(kind: _Kind) -> None:
        path = f"/{kind.kind}"
        schema = _request_schema(kind.model)
        put_schema = _request_schema(kind.model, optional=("name",))

        async def create(request: Request) -> Response:
            entity = await parsed_body(kind, request)
            if isinstance(entity, Refusal):
                return refuse(kind, "POST", entity)
            name = _key_of(entity)

            def judge(catalog: Catalog) -> Refusal | None:
                if name in _table(catalog, kind.kind):
                    return Refusal(409, "conflict", [("name", f"a {kind.label} named {name!r} already exists")])
                return _invalid(kind, entity_problems(catalog, entity))

            refusal = await write(kind, name, entity, judge)
            if refusal is not None:
                return refuse(kind, "POST", refusal)
            location = f"{path}/{quote(name, safe='')}"
            return answer(kind, "POST", 201, _dump(entity), {"Location": location})

        async def list_all() -> Response:
            entities = sorted(_table(view.catalog, kind.kind).items())
            return answer(kind, "GET", 200, [_dump(e) for _, e in entities])

        async def get_one(name: str) -> Response:
            found = await find(kind, name)
            if found is None:
                return refuse(kind, "GET", _not_found(kind, name))
            return answer(kind, "GET", 200, _dump(found))

        async def replace(name: str, request: Request) -> Response:
            entity = await parsed_body(kind, request, path_name=name)
            if isinstance(entity, Refusal):
                return refuse(kind, "PUT", entity)

            def judge(catalog: Catalog) -> Refusal | None:
                if name not in _table(catalog, kind.kind):
                    return _not_found(kind, name)
                invalid = _invalid(kind, entity_problems(catalog, entity))
                return invalid or _replace_conflict(catalog, entity)

            refusal = await write(kind, name, entity, judge)
            if refusal is not None:
                return refuse(kind, "PUT", refusal)
            return answer(kind, "PUT", 200, _dump(entity))

        async def delete(name: str) -> Response:
            def judge(catalog: Catalog) -> Refusal | None:
                if name not in _table(catalog, kind.kind):
                    return _not_found(kind, name)
                reason = _in_use(catalog, kind.kind, name)
                if reason is not None:
                    return Refusal(409, "conflict", [("name", reason)])
                return None

            refusal = await write(kind, name, None, judge)
            if refusal is not None:
                return refuse(kind, "DELETE", refusal)
            return answer(kind, "DELETE", 204)

        error_docs = _error_docs(400, 404, 409, 503)
        router.add_api_route(
            path, create, methods=["POST"], status_code=201, summary=f"Create a {kind.label}",
            openapi_extra=_body_doc(schema), responses={201: _entity_doc(schema), **error_docs},
        )
        router.add_api_route(path, list_all, methods=["GET"], summary=f"List every {kind.label}",
                             responses={200: _entity_doc({"type": "array", "items": schema})})
        router.add_api_route(f"{path}/{{name}}", get_one, methods=["GET"], summary=f"Read a {kind.label}",
                             responses={200: _entity_doc(schema), **_error_docs(404)})
        router.add_api_route(
            f"{path}/{{name}}", replace, methods=["PUT"], summary=f"Replace a {kind.label}",
            openapi_extra=_body_doc(put_schema), responses={200: _entity_doc(schema), **error_docs},
        )
        router.add_api_route(f"{path}/{{name}}", delete, methods=["DELETE"], status_code=204,
                             summary=f"Delete a {kind.label}", responses=_error_docs(404, 409, 503))

    for named in (CUSTOMERS, METERS, PRICE_PLANS):
        named_routes(named)

    # ---- subscriptions: addressed by customer@start_time ---------------------------

    subs = SUBSCRIPTIONS
    sub_schema = _request_schema(Subscription)
    sub_put_schema = _request_schema(Subscription, optional=("customer_name", "start_time"))

    async def create_subscription(request: Request) -> Response:
        entity = await parsed_body(subs, request)
        if isinstance(entity, Refusal):
            return refuse(subs, "POST", entity)
        assert isinstance(entity, Subscription)
        key = entity.key

        def judge(catalog: Catalog) -> Refusal | None:
            if key in catalog.subscriptions:
                return Refusal(409, "conflict", [(
                    "start_time",
                    f"customer {entity.customer_name!r} already has a subscription starting {entity.start_time.isoformat()}",
                )])
            return _invalid(subs, entity_problems(catalog, entity))

        refusal = await write(subs, key, entity, judge)
        if refusal is not None:
            return refuse(subs, "POST", refusal)
        return answer(subs, "POST", 201, _dump(entity), {"Location": f"/subscriptions/{quote(key, safe='')}"})

    async def list_subscriptions(customer_name: str | None = None) -> Response:
        found = list(view.catalog.subscriptions.values())
        if customer_name is not None:
            found = [s for s in found if s.customer_name == customer_name]
        found.sort(key=lambda s: (s.customer_name, s.start_time))
        return answer(subs, "GET", 200, [_dump(s) for s in found])

    async def customer_subscriptions(name: str) -> Response:
        if await find(CUSTOMERS, name) is None:
            return refuse(subs, "GET", _not_found(CUSTOMERS, name))
        return answer(subs, "GET", 200, [_dump(s) for s in view.catalog.subscriptions_of(name)])

    async def get_subscription(subscription_id: str) -> Response:
        key = _subscription_key(subscription_id)
        found = None if key is None else await find(subs, key)
        if key is None or found is None:
            return refuse(subs, "GET", _subscription_not_found(subscription_id, key))
        return answer(subs, "GET", 200, _dump(found))

    async def replace_subscription(subscription_id: str, request: Request) -> Response:
        key = _subscription_key(subscription_id)
        if key is None:
            return refuse(subs, "PUT", _subscription_not_found(subscription_id, key))
        customer, _, start = key.rpartition("@")
        entity = await parsed_body(subs, request, {"customer_name": customer, "start_time": start})
        if isinstance(entity, Refusal):
            return refuse(subs, "PUT", entity)
        assert isinstance(entity, Subscription)
        # The customer and the start are the subscription's identity: to move a
        # subscription, delete it and create the new one.
        if entity.customer_name != customer:
            return refuse(subs, "PUT", Refusal(400, "invalid subscription", [
                ("customer_name", f"must equal the customer in the path ({customer!r}) or be absent"),
            ]))
        if entity.key != key:
            return refuse(subs, "PUT", Refusal(400, "invalid subscription", [
                ("start_time", f"must equal the start in the path ({start}) or be absent"),
            ]))

        def judge(catalog: Catalog) -> Refusal | None:
            if key not in catalog.subscriptions:
                return _subscription_not_found(subscription_id, key)
            return _invalid(subs, entity_problems(catalog, entity))

        refusal = await write(subs, key, entity, judge)
        if refusal is not None:
            return refuse(subs, "PUT", refusal)
        return answer(subs, "PUT", 200, _dump(entity))

    async def delete_subscription(subscription_id: str) -> Response:
        key = _subscription_key(subscription_id)
        if key is None:
            return refuse(subs, "DELETE", _subscription_not_found(subscription_id, key))

        def judge(catalog: Catalog) -> Refusal | None:
            return None if key in catalog.subscriptions else _subscription_not_found(subscription_id, key)

        refusal = await write(subs, key, None, judge)
        if refusal is not None:
            return refuse(subs, "DELETE", refusal)
        return answer(subs, "DELETE", 204)

    sub_errors = _error_docs(400, 404, 409, 503)
    router.add_api_route(
        "/subscriptions", create_subscription, methods=["POST"], status_code=201, summary="Create a subscription",
        openapi_extra=_body_doc(sub_schema), responses={201: _entity_doc(sub_schema), **sub_errors},
    )
    router.add_api_route("/subscriptions", list_subscriptions, methods=["GET"],
                         summary="List subscriptions, optionally of one customer",
                         responses={200: _entity_doc({"type": "array", "items": sub_schema})})
    router.add_api_route("/customers/{name}/subscriptions", customer_subscriptions, methods=["GET"],
                         summary="List the subscriptions of a customer",
                         responses={200: _entity_doc({"type": "array", "items": sub_schema}), **_error_docs(404)})
    router.add_api_route(
        "/subscriptions/{subscription_id}", get_subscription, methods=["GET"],
        summary="Read a subscription (id: customer_name@start_time, percent-encoded)",
        responses={200: _entity_doc(sub_schema), **_error_docs(404)},
    )
    router.add_api_route(
        "/subscriptions/{subscription_id}", replace_subscription, methods=["PUT"],
        summary="Replace a subscription (its customer and start are its identity)",
        openapi_extra=_body_doc(sub_put_schema), responses={200: _entity_doc(sub_schema), **sub_errors},
    )
    router.add_api_route("/subscriptions/{subscription_id}", delete_subscription, methods=["DELETE"],
                         status_code=204, summary="Delete a subscription", responses=_error_docs(404, 503))
    return router


# ---- rules ------------------------------------------------------------------------


class _BodyProblem(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def _judged(judge: Callable[[Catalog], Refusal | None], catalog: Catalog) -> Refusal | None:
    # The view's thread may apply another writer's record while a rule iterates the
    # catalog; a dict that changed size mid-iteration is simply judged again.
    for attempt in range(3):
        try:
            return judge(catalog)
        except RuntimeError as error:
            if "changed size during iteration" not in str(error) or attempt == 2:
                raise
    return None  # unreachable


def _invalid(kind: _Kind, problems: list[Problem]) -> Refusal | None:
    return Refusal(400, f"invalid {kind.label}", problems) if problems else None


def _not_found(kind: _Kind, name: str) -> Refusal:
    return Refusal(404, "not found", [("name", f"no {kind.label} named {name!r}")])


def _subscription_not_found(subscription_id: str, key: str | None) -> Refusal:
    if key is None:
        reason = "is not of the form <customer_name>@<start_time> (RFC 3339), percent-encoded"
    else:
        reason = f"no subscription {key!r}"
    return Refusal(404, "not found", [("subscription_id", reason)])


_INSTANT: TypeAdapter[Any] = TypeAdapter(UtcDateTime)


def _subscription_key(subscription_id: str) -> str | None:
    """The catalog key of `customer@start`, whatever RFC 3339 spelling the start has."""
    customer, at, start = subscription_id.rpartition("@")
    if not at or not customer:
        return None
    try:
        instant = _INSTANT.validate_python(start)
    except ValidationError:
        return None
    return f"{customer}@{instant.isoformat()}"


def _replace_conflict(catalog: Catalog, entity: Entity) -> Refusal | None:
    """A replaced plan must still offer every add-on its subscriptions take."""
    if not isinstance(entity, PricePlan):
        return None
    offered = {a.feature.name for a in entity.add_ons or []}
    problems = [
        ("add_ons", f"subscription {sub.key!r} takes add-on {add_on.feature!r}, which the plan would no longer offer")
        for sub in sorted(catalog.subscriptions.values(), key=lambda s: s.key)
        if sub.price_plan_name == entity.name
        for add_on in sub.add_ons
        if add_on.feature not in offered
    ]
    return Refusal(409, "conflict", problems) if problems else None


def _in_use(catalog: Catalog, kind: str, name: str) -> str | None:
    """Why the entity may not be deleted (what refers to it), or None."""
    if kind == "meters":
        noun, remedy = "price plan", "delete or change"
        users = sorted(
            plan.name for plan in list(catalog.price_plans.values())
            if any(c.meter_name == name for c in plan.metered_components)
        )
    elif kind == "price_plans":
        noun, remedy = "subscription", "delete or change"
        users = sorted(s.key for s in list(catalog.subscriptions.values()) if s.price_plan_name == name)
    elif kind == "customers":
        # Ended subscriptions count: they are the customer's billing history.
        noun, remedy = "subscription", "delete"
        users = [s.key for s in catalog.subscriptions_of(name)]
    else:
        return None
    if not users:
        return None
    listed = ", ".join(repr(u) for u in users[:MAX_LISTED])
    more = f" and {len(users) - MAX_LISTED} more" if len(users) > MAX_LISTED else ""
    plural = len(users) > 1
    return f"is used by {noun}{'s' if plural else ''} {listed}{more}; {remedy} {'them' if plural else 'it'} first"


def _table(catalog: Catalog, kind: str) -> Mapping[str, Entity]:
    tables: dict[str, Mapping[str, Entity]] = {
        "customers": catalog.customers,
        "meters": catalog.meters,
        "price_plans": catalog.price_plans,
        "subscriptions": catalog.subscriptions,
    }
    return tables[kind]


def _key_of(entity: Entity) -> str:
    return entity.key if isinstance(entity, Subscription) else entity.name


def _dump(entity: Entity) -> dict[str, Any]:
    return entity.model_dump(mode="json", exclude_none=True)


# ---- OpenAPI documentation ------------------------------------------------------


class _SeedExactSchema(GenerateJsonSchema):
    """JSON Schema of the models as they validate, not as pydantic would guess.

    Catalog decimals are JSON numbers only (never strings), and a seed model's optional
    field rejects an explicit null unless the field is nullable (PriceTier.cap).
    """

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        return {"type": "number"}

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        if issubclass(cls, SeedModel):
            for name, prop in json_schema.get("properties", {}).items():
                if name in cls.nullable_fields or "anyOf" not in prop:
                    continue
                options = [o for o in prop["anyOf"] if o != {"type": "null"}]
                del prop["anyOf"]
                prop.pop("default", None)
                if len(options) == 1:
                    prop.update(options[0])
                else:
                    prop["anyOf"] = options
        return json_schema


_CONSTRAINTS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace `#/$defs/X` references by their definitions (the catalog has no cycles)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        out.update(_inline(defs[ref.removeprefix("#/$defs/")], defs))
    for key, value in node.items():
        if key not in ("$ref", "$defs"):
            out[key] = _inline(value, defs)
    if out.get("type") == "number":
        # A constraint on an annotated (validator-wrapped) number keeps pydantic's name.
        out = {_CONSTRAINTS.get(key, key): value for key, value in out.items()}
    return out


def _request_schema(model: type[BaseModel], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return copy.deepcopy(_schema_of(model, optional))


@functools.cache
def _schema_of(model: type[BaseModel], optional: tuple[str, ...]) -> dict[str, Any]:
    full = model.model_json_schema(schema_generator=_SeedExactSchema)
    schema: dict[str, Any] = _inline(full, full.get("$defs", {}))
    if optional:
        schema["required"] = [f for f in schema.get("required", []) if f not in optional]
    return schema


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _entity_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "the entity as stored", "content": {"application/json": {"schema": schema}}}


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "reason": {"type": "string"},
    },
}
_ERROR_TEXT = {
    400: "the body is not a valid entity, or breaks a catalog rule",
    404: "no such entity",
    409: "the name is taken, or other entities refer to this one",
    503: "the catalog topic cannot be read or written now; retry",
}


def _error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": _ERROR_TEXT[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
        for status in statuses
    }

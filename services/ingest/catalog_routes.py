"""The catalog HTTP API: create, read, replace and delete customers, meters, price plans
and subscriptions (issue 3). How a write is judged and waited for: catalog_access.py.

Errors have the measurement API's shape: `{"error": ..., "errors": [{"field", "reason"}]}`
for anything about the request's content (400, 404, 409), `{"error", "reason"}` for a
request-level failure (503, 504), as 401 and the measurement API's 503 are.

Names may hold any character but control characters: '/', '%', quotes, unicode. A client
percent-encodes them in the path; routing matches on the path as sent (raw_path), so an
encoded '/' stays inside its segment instead of splitting it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.ingest.catalog_access import (
    CUSTOMERS,
    METERS,
    PRICE_PLANS,
    SUBSCRIPTIONS,
    SYNC_TIMEOUT,
    VISIBLE_TIMEOUT,
    CatalogAccess,
    CatalogReader,
    CatalogWriter,
    Judge,
    Kind,
    Refusal,
    conflict,
    invalid,
    not_found,
    subscription_not_found,
)
from services.ingest.metrics import CATALOG_REQUESTS
from services.ingest.openapi import body_doc, entity_doc, entity_schema, error_docs, list_doc
from services.ingest.routing import RawPathRoute
from services.settings import Settings
from shared.catalog import Catalog, Entity, entity_problems
from shared.catalog_changes import dropped_add_ons, in_use, key_of, subscription_key, table
from shared.models import Subscription


def catalog_router(
    settings: Settings,
    view: CatalogReader,
    writer: CatalogWriter,
    *,
    sync_timeout: float = SYNC_TIMEOUT,
    visible_timeout: float = VISIBLE_TIMEOUT,
) -> APIRouter:
    access = CatalogAccess(settings, view, writer, sync_timeout=sync_timeout, visible_timeout=visible_timeout)
    router = APIRouter(route_class=RawPathRoute, tags=["catalog"])
    for kind in (CUSTOMERS, METERS, PRICE_PLANS):
        NamedRoutes(access, kind).add_to(router)
    SubscriptionRoutes(access).add_to(router)
    return router


class _Routes:
    """The handlers of one kind: every answer is counted by kind, method and status."""

    def __init__(self, access: CatalogAccess, kind: Kind) -> None:
        self._access = access
        self._kind = kind

    def _answer(self, method: str, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        CATALOG_REQUESTS.labels(self._kind.kind, method, str(status)).inc()
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(body, status_code=status, headers=headers)

    def _refuse(self, method: str, refusal: Refusal) -> Response:
        CATALOG_REQUESTS.labels(self._kind.kind, method, str(refusal.status)).inc()
        return refusal.response()

    async def _commit(
        self, method: str, key: str, entity: Entity | None, judge: Judge, status: int,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Write, then refuse or answer with what was written (204 for a delete)."""
        refusal = await self._access.write(self._kind, key, entity, judge)
        if refusal is not None:
            return self._refuse(method, refusal)
        return self._answer(method, status, None if entity is None else _dump(entity), headers)


class NamedRoutes(_Routes):
    """Customers, meters and price plans: addressed by name."""

    async def create(self, request: Request) -> Response:
        kind = self._kind
        entity = await self._access.entity(kind, request)
        if isinstance(entity, Refusal):
            return self._refuse("POST", entity)
        name = key_of(entity)

        def judge(catalog: Catalog) -> Refusal | None:
            if name in table(catalog, kind.kind):
                return conflict([("name", f"a {kind.label} named {name!r} already exists")])
            return invalid(kind, entity_problems(catalog, entity))

        location = f"/{kind.kind}/{quote(name, safe='')}"
        return await self._commit("POST", name, entity, judge, 201, {"Location": location})

    async def list_all(self) -> Response:
        entities = sorted(table(self._access.view.catalog, self._kind.kind).items())
        return self._answer("GET", 200, [_dump(e) for _, e in entities])

    async def get_one(self, name: str) -> Response:
        found = await self._access.find(self._kind, name)
        if found is None:
            return self._refuse("GET", not_found(self._kind, name))
        return self._answer("GET", 200, _dump(found))

    async def replace(self, name: str, request: Request) -> Response:
        kind = self._kind
        entity = await self._access.entity(kind, request, path_name=name)
        if isinstance(entity, Refusal):
            return self._refuse("PUT", entity)

        def judge(catalog: Catalog) -> Refusal | None:
            if name not in table(catalog, kind.kind):
                return not_found(kind, name)
            return invalid(kind, entity_problems(catalog, entity)) or conflict(dropped_add_ons(catalog, entity))

        return await self._commit("PUT", name, entity, judge, 200)

    async def delete(self, name: str) -> Response:
        kind = self._kind

        def judge(catalog: Catalog) -> Refusal | None:
            if name not in table(catalog, kind.kind):
                return not_found(kind, name)
            reason = in_use(catalog, kind.kind, name)
            return conflict([] if reason is None else [("name", reason)])

        return await self._commit("DELETE", name, None, judge, 204)

    def add_to(self, router: APIRouter) -> None:
        label, path, one = self._kind.label, f"/{self._kind.kind}", f"/{self._kind.kind}/{{name}}"
        schema = entity_schema(self._kind.model)
        put_schema = entity_schema(self._kind.model, optional=("name",))
        writes = error_docs(400, 404, 409, 503)
        router.add_api_route(
            path, self.create, methods=["POST"], status_code=201, summary=f"Create a {label}",
            openapi_extra=body_doc(schema), responses={201: entity_doc(schema), **writes},
        )
        router.add_api_route(path, self.list_all, methods=["GET"], summary=f"List every {label}",
                             responses={200: list_doc(schema)})
        router.add_api_route(one, self.get_one, methods=["GET"], summary=f"Read a {label}",
                             responses={200: entity_doc(schema), **error_docs(404)})
        router.add_api_route(
            one, self.replace, methods=["PUT"], summary=f"Replace a {label}",
            openapi_extra=body_doc(put_schema), responses={200: entity_doc(schema), **writes},
        )
        router.add_api_route(one, self.delete, methods=["DELETE"], status_code=204,
                             summary=f"Delete a {label}", responses=error_docs(404, 409, 503))


class SubscriptionRoutes(_Routes):
    """Subscriptions: addressed by customer@start_time; the customer and the start are a
    subscription's identity, so to move one, delete it and create the new one."""

    def __init__(self, access: CatalogAccess) -> None:
        super().__init__(access, SUBSCRIPTIONS)

    async def create_subscription(self, request: Request) -> Response:
        entity = await self._access.entity(SUBSCRIPTIONS, request)
        if isinstance(entity, Refusal):
            return self._refuse("POST", entity)
        assert isinstance(entity, Subscription)
        key = entity.key

        def judge(catalog: Catalog) -> Refusal | None:
            if key in catalog.subscriptions:
                taken = (f"customer {entity.customer_name!r} already has a subscription "
                         f"starting {entity.start_time.isoformat()}")
                return conflict([("start_time", taken)])
            return invalid(SUBSCRIPTIONS, entity_problems(catalog, entity))

        location = f"/subscriptions/{quote(key, safe='')}"
        return await self._commit("POST", key, entity, judge, 201, {"Location": location})

    async def list_subscriptions(self, customer_name: str | None = None) -> Response:
        found = list(self._access.view.catalog.subscriptions.values())
        if customer_name is not None:
            found = [s for s in found if s.customer_name == customer_name]
        found.sort(key=lambda s: (s.customer_name, s.start_time))
        return self._answer("GET", 200, [_dump(s) for s in found])

    async def customer_subscriptions(self, name: str) -> Response:
        if await self._access.find(CUSTOMERS, name) is None:
            return self._refuse("GET", not_found(CUSTOMERS, name))
        return self._answer("GET", 200, [_dump(s) for s in self._access.view.catalog.subscriptions_of(name)])

    async def get_subscription(self, subscription_id: str) -> Response:
        key = subscription_key(subscription_id)
        found = None if key is None else await self._access.find(SUBSCRIPTIONS, key)
        if key is None or found is None:
            return self._refuse("GET", subscription_not_found(subscription_id, key))
        return self._answer("GET", 200, _dump(found))

    async def replace_subscription(self, subscription_id: str, request: Request) -> Response:
        key = subscription_key(subscription_id)
        if key is None:
            return self._refuse("PUT", subscription_not_found(subscription_id, key))
        customer, _, start = key.rpartition("@")
        entity = await self._access.entity(SUBSCRIPTIONS, request, {"customer_name": customer, "start_time": start})
        if isinstance(entity, Refusal):
            return self._refuse("PUT", entity)
        assert isinstance(entity, Subscription)
        moved = _moved(entity, key, customer, start)
        if moved is not None:
            return self._refuse("PUT", moved)

        def judge(catalog: Catalog) -> Refusal | None:
            if key not in catalog.subscriptions:
                return subscription_not_found(subscription_id, key)
            return invalid(SUBSCRIPTIONS, entity_problems(catalog, entity))

        return await self._commit("PUT", key, entity, judge, 200)

    async def delete_subscription(self, subscription_id: str) -> Response:
        key = subscription_key(subscription_id)
        if key is None:
            return self._refuse("DELETE", subscription_not_found(subscription_id, key))

        def judge(catalog: Catalog) -> Refusal | None:
            return None if key in catalog.subscriptions else subscription_not_found(subscription_id, key)

        return await self._commit("DELETE", key, None, judge, 204)

    def add_to(self, router: APIRouter) -> None:
        schema = entity_schema(Subscription)
        put_schema = entity_schema(Subscription, optional=("customer_name", "start_time"))
        writes = error_docs(400, 404, 409, 503)
        router.add_api_route(
            "/subscriptions", self.create_subscription, methods=["POST"], status_code=201,
            summary="Create a subscription",
            openapi_extra=body_doc(schema), responses={201: entity_doc(schema), **writes},
        )
        router.add_api_route("/subscriptions", self.list_subscriptions, methods=["GET"],
                             summary="List subscriptions, optionally of one customer",
                             responses={200: list_doc(schema)})
        router.add_api_route("/customers/{name}/subscriptions", self.customer_subscriptions, methods=["GET"],
                             summary="List the subscriptions of a customer",
                             responses={200: list_doc(schema), **error_docs(404)})
        one = "/subscriptions/{subscription_id}"
        router.add_api_route(
            one, self.get_subscription, methods=["GET"],
            summary="Read a subscription (id: customer_name@start_time, percent-encoded)",
            responses={200: entity_doc(schema), **error_docs(404)},
        )
        router.add_api_route(
            one, self.replace_subscription, methods=["PUT"],
            summary="Replace a subscription (its customer and start are its identity)",
            openapi_extra=body_doc(put_schema), responses={200: entity_doc(schema), **writes},
        )
        router.add_api_route(one, self.delete_subscription, methods=["DELETE"],
                             status_code=204, summary="Delete a subscription", responses=error_docs(404, 503))


def _moved(entity: Subscription, key: str, customer: str, start: str) -> Refusal | None:
    """A PUT's body may not name another customer or start than its path."""
    if entity.customer_name != customer:
        return Refusal(400, "invalid subscription", [
            ("customer_name", f"must equal the customer in the path ({customer!r}) or be absent"),
        ])
    if entity.key != key:
        return Refusal(400, "invalid subscription", [
            ("start_time", f"must equal the start in the path ({start}) or be absent"),
        ])
    return None


def _dump(entity: Entity) -> dict[str, Any]:
    return entity.model_dump(mode="json", exclude_none=True)

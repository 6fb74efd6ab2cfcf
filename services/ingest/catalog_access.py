"""How the catalog routes read and change the catalog.

Every write is judged against a view that has just been synced (`view.sync()`), with the
same rules `metering catalog apply` uses (`shared.catalog.entity_problems`), plus the
rules only a change to an existing catalog can break (`shared.catalog_changes`). It is
then written to the compacted catalog topic, and the answer waits until this service's
view has applied it, so a following GET, or a measurement for a new customer, sees it.

Bodies are validated here, not by FastAPI, so the error format is ours and the seed
schemas' semantics (numbers are never strings, no explicit nulls, ...) are exactly what
the models enforce.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from services.infra.catalog_view import entity_key, publish
from services.infra.web import BodyTooLarge, error_response, problem, read_limited
from services.ingest.validation import BodyError, parse_body, too_deep
from services.settings import Settings
from shared.catalog import Catalog, Entity, Problem
from shared.catalog_changes import key_of, table
from shared.errors import field_errors
from shared.models import Customer, Meter, PricePlan, Subscription

log = logging.getLogger("metering.ingest.catalog")

Change = tuple[str, str, Entity | None]

SYNC_TIMEOUT = 10.0
VISIBLE_TIMEOUT = 10.0
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
class Kind:
    kind: str  # catalog kind = URL segment
    label: str  # in messages: "a customer named 'x'"
    model: type[Customer] | type[Meter] | type[PricePlan] | type[Subscription]


CUSTOMERS = Kind("customers", "customer", Customer)
METERS = Kind("meters", "meter", Meter)
PRICE_PLANS = Kind("price_plans", "price plan", PricePlan)
SUBSCRIPTIONS = Kind("subscriptions", "subscription", Subscription)


@dataclass(frozen=True)
class Refusal:
    """A write or read that is answered with an error instead."""

    status: int
    error: str
    problems: Sequence[Problem] = ()
    reason: str | None = None

    def response(self) -> JSONResponse:
        if self.reason is not None:
            return error_response(self.status, self.error, reason=self.reason)
        return error_response(self.status, self.error, errors=[problem(f, r) for f, r in self.problems])


Judge = Callable[[Catalog], Refusal | None]  # what stands against a write, if anything


def invalid(kind: Kind, problems: list[Problem]) -> Refusal | None:
    return Refusal(400, f"invalid {kind.label}", problems) if problems else None


def conflict(problems: list[Problem]) -> Refusal | None:
    return Refusal(409, "conflict", problems) if problems else None


def not_found(kind: Kind, name: str) -> Refusal:
    return Refusal(404, "not found", [("name", f"no {kind.label} named {name!r}")])


def subscription_not_found(subscription_id: str, key: str | None) -> Refusal:
    if key is None:
        reason = "is not of the form <customer_name>@<start_time> (RFC 3339), percent-encoded"
    else:
        reason = f"no subscription {key!r}"
    return Refusal(404, "not found", [("subscription_id", reason)])


class CatalogAccess:
    """Bodies to entities, judged writes that wait until visible, reads that catch up."""

    def __init__(
        self, settings: Settings, view: CatalogReader, writer: CatalogWriter,
        *, sync_timeout: float = SYNC_TIMEOUT, visible_timeout: float = VISIBLE_TIMEOUT,
    ) -> None:
        self.view = view
        self._writer = writer
        self._sync_timeout = sync_timeout
        self._visible_timeout = visible_timeout
        self._max_record_bytes = settings.limits.max_record_bytes
        # An entity travels as one catalog record, so a body larger than a record cannot
        # be written whatever it holds: refused as it streams in, before it is parsed.
        self._body_limit = min(settings.limits.max_body_bytes, settings.limits.max_record_bytes)
        # One write at a time per process: judging and writing must not interleave, or
        # two POSTs of one name could both pass the uniqueness check. Writers in other
        # processes are ordered by the topic (last write wins), as `catalog apply` is.
        self._write_lock = threading.Lock()

    # ---- reading -----------------------------------------------------------------

    async def find(self, kind: Kind, key: str) -> Entity | None:
        found = table(self.view.catalog, kind.kind).get(key)
        if found is None:
            # Written a moment ago through another instance? Catch up once, then answer.
            await run_in_threadpool(self.view.sync, self._sync_timeout)
            found = table(self.view.catalog, kind.kind).get(key)
        return found

    async def entity(
        self, kind: Kind, request: Request, fill: Mapping[str, Any] | None = None, path_name: str | None = None
    ) -> Entity | Refusal:
        """The body as an entity of `kind`, or why not.

        For a PUT, `path_name` is the name in the path, which the body must repeat or
        leave out, and `fill` supplies the identity fields a body left out.
        """
        try:
            raw = await self._read_json(request)
        except _BodyProblem as body_problem:
            return body_problem.refusal
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
        return self._record_too_large(kind, entity) or entity

    async def _read_json(self, request: Request) -> Any:
        try:
            parsed = parse_body(await read_limited(request, self._body_limit), allow_constants=False)
        except BodyTooLarge as error:
            raise _BodyProblem(413, "body too large", str(error)) from error
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
            reason = "body is not valid JSON: it holds an unpaired UTF-16 surrogate"
            raise _BodyProblem(400, "invalid body", reason) from error
        return parsed

    def _record_too_large(self, kind: Kind, entity: Entity) -> Refusal | None:
        """A body within the limit can still encode larger (1e300 is written in 301 digits)."""
        size = len(entity_key(kind.kind, key_of(entity))) + len(entity.model_dump_json(exclude_none=True).encode())
        if size <= self._max_record_bytes:
            return None
        reason = f"the {kind.label} encodes to {size} bytes; a catalog record holds at most {self._max_record_bytes}"
        return Refusal(413, "entity too large", [("body", reason)])

    # ---- writing -----------------------------------------------------------------

    async def write(self, kind: Kind, key: str, entity: Entity | None, judge: Judge) -> Refusal | None:
        """Write `entity` (None: delete) under `key` if `judge` finds nothing against it."""
        return await run_in_threadpool(self._judge_and_write, kind, key, entity, judge)

    def _judge_and_write(self, kind: Kind, key: str, entity: Entity | None, judge: Judge) -> Refusal | None:
        with self._write_lock:
            if not self.view.sync(self._sync_timeout):
                return Refusal(503, "unavailable", reason="the catalog could not be read up to date; retry")
            refusal = _judged(judge, self.view.catalog)
            if refusal is not None:
                return refusal
            try:
                self._writer.write([(kind.kind, key, entity)])
            except Exception:  # any broker or client failure: nothing is known to be written
                log.exception("catalog write of %s/%s failed", kind.kind, key)
                reason = "the catalog change was not acknowledged by the broker; retry"
                return Refusal(503, "unavailable", reason=reason)
            if not self._visible(kind, key, entity):
                return Refusal(
                    504, "not yet visible",
                    reason=f"the change was written but this service's catalog view did not apply it within "
                    f"{self._visible_timeout:g}s; read it back before retrying",
                )
        return None

    def _visible(self, kind: Kind, key: str, entity: Entity | None) -> bool:
        """Read-your-writes: wait until the view holds what was written (None: nothing)."""
        deadline = time.monotonic() + self._visible_timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.1)
            if self.view.sync(remaining) and table(self.view.catalog, kind.kind).get(key) == entity:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


class _BodyProblem(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.refusal = Refusal(status, error, [("body", reason)])


def _judged(judge: Judge, catalog: Catalog) -> Refusal | None:
    # The view's thread may apply another writer's record while a rule iterates the
    # catalog; a dict that changed size mid-iteration is simply judged again.
    for attempt in range(3):
        try:
            return judge(catalog)
        except RuntimeError as error:
            if "changed size during iteration" not in str(error) or attempt == 2:
                raise
    return None  # unreachable

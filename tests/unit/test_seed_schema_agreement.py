"""Customer and PricePlan accept exactly what the seed JSON Schemas accept.

Every case states its expected verdict, and both the schema (draft-07 + format checks
+ the `nullable` extension, see seed_schemas.py) and the model must reach it, so the
agreement cannot hold vacuously. A hypothesis test then throws schema-shaped and
random JSON values at both and asks only that they agree.

The domain is JSON as `json.loads` returns it (dict, list, str, int, finite float,
bool, None). Non-finite floats are outside it; see `test_non_finite_numbers_*`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from shared.models import Customer, PricePlan
from shared.models.limits import MAX_NAME_LENGTH
from tests.unit.seed_schemas import (
    CUSTOMER_SEED,
    PRICE_PLAN_SEED,
    customer_validator,
    generated_validator,
    load_seed_schema,
    price_plan_validator,
    skip_without_seeds,
)

skip_without_seeds()  # the cases below read the seeds as the module loads

# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------


def model_verdict(model: type[pydantic.BaseModel], payload: Any) -> tuple[bool, str]:
    """(accepted, why not). Only a ValidationError counts as a rejection; any other
    exception is a bug in the model and propagates."""
    try:
        model.model_validate(payload)
    except pydantic.ValidationError as error:
        return False, str(error)
    return True, ""


def schema_verdict(validator: Any, payload: Any) -> tuple[bool, str]:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]
    return not errors, "; ".join(errors)


def check_case(
    model: type[pydantic.BaseModel], validator: Any, payload: Any, expected: bool
) -> None:
    schema_ok, schema_why = schema_verdict(validator, payload)
    model_ok, model_why = model_verdict(model, payload)
    assert schema_ok == expected, (
        f"the schema says {schema_ok}, the case expects {expected}: {schema_why or 'valid'}"
    )
    assert model_ok == schema_ok, (
        f"the schema says {schema_ok} but {model.__name__} says {model_ok}: "
        f"{model_why or 'accepted'}"
    )


# ---------------------------------------------------------------------------
# Building cases
# ---------------------------------------------------------------------------

MISSING: Any = object()  # as a value in `patched`: delete the key


def patched(base: Any, *changes: tuple[tuple[str | int, ...], Any]) -> Any:
    """A deep copy of `base` with each (path, value) set (or deleted when MISSING)."""
    out = copy.deepcopy(base)
    for path, value in changes:
        node = out
        for step in path[:-1]:
            node = node[step]
        if value is MISSING:
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(value)
    return out


Case = tuple[str, Any, bool]


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(payload, ok, id=name) for name, payload, ok in cases]


# ---------------------------------------------------------------------------
# Customer corpus
# ---------------------------------------------------------------------------

CONTACT: dict[str, Any] = {
    "address_line_1": "1 Main St",
    "address_line_2": "Suite 200",
    "city": "Springfield",
    "state": "IL",
    "country": "US",
    "zipcode": "62701",
    "url": "https://acme.example.com",
    "logo_url": "https://cdn.example.com/acme/logo.png",
    "email": "billing@acme.example.com",
    "secondary_emails": ["ops@acme.example.com", "cfo@acme.example.com"],
    "phone": "+1 555 0100",
    "legal_name": "Acme Corporation",
    "vat_id": "US123456789",
}
MIN_CUSTOMER: dict[str, Any] = {"name": "acme"}
FULL_CUSTOMER: dict[str, Any] = {
    "name": "acme",
    "display_name": "Acme Corp",
    "contact_info": CONTACT,
    "created_at": "2026-01-15T09:30:00Z",
    "measurement_mappings": [{"label": "customer_id", "value": "acme-1"}],
    "tags": [{"key": "tier", "value": "gold"}],
}


def cust(*changes: tuple[tuple[str | int, ...], Any]) -> Any:
    return patched(FULL_CUSTOMER, *changes)


def contact(field: str, value: Any) -> Any:
    return cust((("contact_info", field), value))


def customer_created(value: Any) -> Any:
    return cust((("created_at",), value))


CUSTOMER_CASES: list[Case] = [
    # -- accepted -----------------------------------------------------------
    ("minimal", MIN_CUSTOMER, True),
    ("full", FULL_CUSTOMER, True),
    ("name-empty-string", {"name": ""}, True),
    ("name-unicode", {"name": "Ünïcødé 顧客"}, True),
    # The one bound beyond the seed (seed_schemas.py, NAME_BOUND): counted in characters.
    ("name-at-length-limit", {"name": "顧" * MAX_NAME_LENGTH}, True),
    ("extra-top-level-fields", {"name": "a", "plan": "gold", "nested": {"x": [1, None]}}, True),
    ("extra-field-null", {"name": "a", "whatever": None}, True),
    ("extra-field-in-contact-info", contact("fax", 12345), True),
    ("contact-info-empty", cust((("contact_info",), {})), True),
    ("display-name-empty", cust((("display_name",), "")), True),
    ("mappings-empty", cust((("measurement_mappings",), [])), True),
    ("mappings-any-objects", cust((("measurement_mappings",), [{}, {"label": 1}])), True),
    ("tags-empty", cust((("tags",), [])), True),
    ("tags-any-objects", cust((("tags",), [{"k": "v"}, {}, {"deep": {"x": []}}])), True),
    ("optional-fields-absent", cust((("contact_info",), MISSING), (("tags",), MISSING)), True),
    ("created-at-offset", customer_created("2026-01-15T11:30:00+02:00"), True),
    ("created-at-negative-offset", customer_created("2026-01-15T04:00:00-05:30"), True),
    ("created-at-fraction", customer_created("2026-01-15T09:30:00.123456Z"), True),
    ("created-at-long-fraction", customer_created("2026-01-15T09:30:00.123456789012Z"), True),
    ("created-at-lowercase-t-z", customer_created("2026-01-15t09:30:00z"), True),
    ("created-at-leap-day", customer_created("2024-02-29T00:00:00Z"), True),
    ("created-at-minus-zero-offset", customer_created("2026-01-15T09:30:00-00:00"), True),
    # jsonschema's date-time regex ends in `$`, which also matches before ONE final "\n".
    ("created-at-one-trailing-newline", customer_created("2026-01-15T09:30:00Z\n"), True),
    # Valid RFC 3339 instants that lie outside Python's datetime range in UTC.
    ("created-at-year-1-positive-offset", customer_created("0001-01-01T00:00:00+01:00"), True),
    ("created-at-year-9999-negative-offset", customer_created("9999-12-31T23:59:59-01:00"), True),
    ("email-minimal", contact("email", "a@b"), True),
    ("email-only-at-sign", contact("email", "@"), True),
    ("secondary-emails-no-format", contact("secondary_emails", ["not an email"]), True),
    ("secondary-emails-empty", contact("secondary_emails", []), True),
    ("url-mailto", contact("url", "mailto:billing@acme.example.com"), True),
    ("url-urn", contact("url", "urn:isbn:0451450523"), True),
    ("logo-url-query-fragment", contact("logo_url", "https://cdn.example.com/l.png?s=2#x"), True),
    ("phone-any-string", contact("phone", "call me maybe"), True),
    # -- rejected: required, root type ---------------------------------------
    ("missing-name", {"display_name": "Acme"}, False),
    ("missing-name-full", cust((("name",), MISSING)), False),
    ("empty-object", {}, False),
    ("root-array", [MIN_CUSTOMER], False),
    ("root-string", "acme", False),
    ("root-null", None, False),
    ("root-number", 1, False),
    ("root-bool", True, False),
    # -- rejected: type mismatches --------------------------------------------
    ("name-null", {"name": None}, False),
    ("name-number", {"name": 42}, False),
    ("name-float", {"name": 4.2}, False),
    ("name-bool", {"name": True}, False),
    ("name-array", {"name": ["acme"]}, False),
    ("name-object", {"name": {"first": "acme"}}, False),
    ("name-over-length-limit", {"name": "x" * (MAX_NAME_LENGTH + 1)}, False),
    ("display-name-null", cust((("display_name",), None)), False),
    ("display-name-number", cust((("display_name",), 7)), False),
    ("contact-info-null", cust((("contact_info",), None)), False),
    ("contact-info-string", cust((("contact_info",), "1 Main St")), False),
    ("contact-info-array", cust((("contact_info",), [CONTACT])), False),
    ("contact-info-number", cust((("contact_info",), 0)), False),
    ("city-number", contact("city", 12), False),
    ("zipcode-number", contact("zipcode", 62701), False),
    ("vat-id-bool", contact("vat_id", False), False),
    ("phone-null", contact("phone", None), False),
    ("legal-name-array", contact("legal_name", ["Acme"]), False),
    # -- rejected: formats ------------------------------------------------------
    ("email-without-at", contact("email", "billing.acme.example.com"), False),
    ("email-empty", contact("email", ""), False),
    ("email-null", contact("email", None), False),
    ("email-number", contact("email", 5), False),
    ("url-relative-path", contact("url", "/about"), False),
    ("url-no-scheme", contact("url", "acme.example.com"), False),
    ("url-empty", contact("url", ""), False),
    ("url-with-space", contact("url", "https://acme.example.com/a b"), False),
    ("url-null", contact("url", None), False),
    ("logo-url-relative", contact("logo_url", "images/logo.png"), False),
    ("logo-url-number", contact("logo_url", 1), False),
    ("created-at-no-timezone", customer_created("2026-01-15T09:30:00"), False),
    ("created-at-space-separator", customer_created("2026-01-15 09:30:00Z"), False),
    ("created-at-date-only", customer_created("2026-01-15"), False),
    ("created-at-feb-30", customer_created("2026-02-30T00:00:00Z"), False),
    ("created-at-feb-29-non-leap", customer_created("2025-02-29T00:00:00Z"), False),
    ("created-at-month-13", customer_created("2026-13-01T00:00:00Z"), False),
    ("created-at-hour-24", customer_created("2026-01-15T24:00:00Z"), False),
    ("created-at-leap-second", customer_created("2016-12-31T23:59:60Z"), False),
    ("created-at-year-zero", customer_created("0000-01-01T00:00:00Z"), False),
    ("created-at-offset-24h", customer_created("2026-01-15T09:30:00+24:00"), False),
    ("created-at-offset-no-colon", customer_created("2026-01-15T09:30:00+0200"), False),
    ("created-at-empty-fraction", customer_created("2026-01-15T09:30:00.Z"), False),
    ("created-at-two-trailing-newlines", customer_created("2026-01-15T09:30:00Z\n\n"), False),
    ("created-at-leading-space", customer_created(" 2026-01-15T09:30:00Z"), False),
    ("created-at-trailing-space", customer_created("2026-01-15T09:30:00Z "), False),
    ("created-at-epoch-number", customer_created(1768469400), False),
    ("created-at-null", customer_created(None), False),
    ("created-at-empty", customer_created(""), False),
    # -- rejected: arrays as objects and vice versa ----------------------------
    ("secondary-emails-string", contact("secondary_emails", "ops@acme.example.com"), False),
    ("secondary-emails-object", contact("secondary_emails", {"0": "ops@acme"}), False),
    ("secondary-emails-number-item", contact("secondary_emails", [1]), False),
    ("secondary-emails-null-item", contact("secondary_emails", [None]), False),
    ("mappings-object", cust((("measurement_mappings",), {"label": "a", "value": "b"})), False),
    ("mappings-string-item", cust((("measurement_mappings",), ["customer_id=acme"])), False),
    ("mappings-array-item", cust((("measurement_mappings",), [["customer_id", "acme"]])), False),
    ("mappings-null-item", cust((("measurement_mappings",), [None])), False),
    ("mappings-null", cust((("measurement_mappings",), None)), False),
    ("mappings-string", cust((("measurement_mappings",), "customer_id")), False),
    ("tags-object", cust((("tags",), {"tier": "gold"})), False),
    ("tags-bool-item", cust((("tags",), [True])), False),
    ("tags-null", cust((("tags",), None)), False),
]


# ---------------------------------------------------------------------------
# PricePlan corpus
# ---------------------------------------------------------------------------

COMPONENT: dict[str, Any] = {
    "meter_name": "api_calls",
    "meter_display_name": "API calls",
    "display_name": "API usage",
    "external_uuid": "3f1c0e6a-0000-4000-8000-000000000001",
    "price_scheme": {
        "scheme_type": "TIERED",
        "unit_name": "call",
        "time_unit_name": "month",
        "prices": [{"price": 0, "cap": 1000}, {"price": 0.002, "cap": None}],
    },
    "limit": 1000000,
    "minimum_charge": 5,
    "minimum_charge_frequency": "monthly",
    "watermark": 0.5,
}
FEATURE: dict[str, Any] = {"name": "sso", "display_name": "SSO", "description": "Single sign-on"}
ADD_ON: dict[str, Any] = {
    "feature": {"name": "extra_seats"},
    "price": 25,
    "price_scheme_type": "FLAT",
    "single_use": False,
    "quantity_enabled": True,
    "immediately_charge": True,
    "limit": 100,
    "price_frequency": "monthly",
    "charge_frequency": "monthly",
}
LIMIT: dict[str, Any] = {"feature": {"name": "seats"}, "limit": 10}
TRIAL: dict[str, Any] = {"time_length": 14, "time_unit_name": "day", "credit": 50}
MIN_PLAN: dict[str, Any] = {"name": "starter", "period": "monthly", "metered_components": []}
FULL_PLAN: dict[str, Any] = {
    "name": "pro",
    "display_name": "Pro",
    "description": "For growing teams",
    "external_uuid": "9b2d7c1e-0000-4000-8000-000000000002",
    "base_price": 49.99,
    "base_price_frequency": "monthly",
    "base_price_description": "Platform fee",
    "period": "monthly",
    "minimum_charge": 10,
    "minimum_charge_frequency": "monthly",
    "metered_components": [COMPONENT],
    "features": [FEATURE],
    "add_ons": [ADD_ON],
    "limits": [LIMIT],
    "trial": TRIAL,
    "created_at": "2026-01-15T09:30:00Z",
}

MC = ("metered_components", 0)
PS = (*MC, "price_scheme")
TIER = (*PS, "prices", 1)
AO = ("add_ons", 0)
LIM = ("limits", 0)


def plan(*changes: tuple[tuple[str | int, ...], Any]) -> Any:
    return patched(FULL_PLAN, *changes)


def at(path: tuple[str | int, ...], value: Any) -> Any:
    return plan((path, value))


PRICE_PLAN_CASES: list[Case] = [
    # -- accepted -----------------------------------------------------------
    ("minimal", MIN_PLAN, True),
    ("full", FULL_PLAN, True),
    ("period-monthly", at(("period",), "monthly"), True),
    ("period-quarterly", at(("period",), "quarterly"), True),
    ("period-annual", at(("period",), "annual"), True),
    ("name-empty-string", at(("name",), ""), True),
    ("name-at-length-limit", at(("name",), "p" * MAX_NAME_LENGTH), True),
    ("extra-top-level", at(("currency",), "EUR"), True),
    ("extra-in-component", at((*MC, "custom"), {"x": 1}), True),
    ("extra-in-price-scheme", at((*PS, "rounding"), "up"), True),
    ("extra-in-tier", at((*TIER, "note"), None), True),
    ("extra-in-feature", at(("features", 0, "icon"), "lock"), True),
    ("extra-in-add-on", at((*AO, "sku"), 7), True),
    ("extra-in-add-on-feature", at((*AO, "feature", "extra"), []), True),
    ("extra-in-limit", at((*LIM, "soft"), True), True),
    ("extra-in-trial", at(("trial", "auto_convert"), False), True),
    ("base-price-zero", at(("base_price",), 0), True),
    ("base-price-zero-float", at(("base_price",), 0.0), True),
    ("base-price-negative-zero", at(("base_price",), -0.0), True),
    ("base-price-integer", at(("base_price",), 100), True),
    ("base-price-tiny", at(("base_price",), 1e-9), True),
    ("base-price-huge", at(("base_price",), 1e15), True),
    ("minimum-charge-zero", at(("minimum_charge",), 0), True),
    ("minimum-charge-positive", at(("minimum_charge",), 5.5), True),
    ("tier-price-zero", at((*TIER, "price"), 0), True),
    ("tier-price-positive", at((*TIER, "price"), 0.0001), True),
    ("tier-price-absent", at((*TIER, "price"), MISSING), True),
    ("tier-cap-null", at((*TIER, "cap"), None), True),
    ("tier-cap-absent", at((*TIER, "cap"), MISSING), True),
    ("tier-cap-negative", at((*TIER, "cap"), -5), True),
    ("tier-empty", at((*TIER,), {}), True),
    ("prices-empty", at((*PS, "prices"), []), True),
    ("price-scheme-empty", at(PS, {}), True),
    ("scheme-type-flat", at((*PS, "scheme_type"), "FLAT"), True),
    ("scheme-type-tiered", at((*PS, "scheme_type"), "TIERED"), True),
    ("scheme-type-volume", at((*PS, "scheme_type"), "VOLUME"), True),
    ("scheme-type-package", at((*PS, "scheme_type"), "PACKAGE"), True),
    ("component-limit-negative", at((*MC, "limit"), -1), True),
    ("component-minimum-charge-negative", at((*MC, "minimum_charge"), -3), True),
    ("component-watermark-negative", at((*MC, "watermark"), -0.5), True),
    ("component-required-only", at(MC, {k: COMPONENT[k] for k in
                                       ("meter_name", "meter_display_name", "price_scheme")}), True),
    ("add-on-price-negative", at((*AO, "price"), -10), True),
    ("add-on-price-zero", at((*AO, "price"), 0), True),
    ("add-on-limit-negative", at((*AO, "limit"), -1), True),
    ("add-on-immediately-charge-false", at((*AO, "immediately_charge"), False), True),
    ("add-on-required-only", at(AO, {k: ADD_ON[k] for k in (
        "feature", "price", "price_scheme_type", "single_use", "quantity_enabled")}), True),
    ("limit-negative", at((*LIM, "limit"), -5), True),
    ("limit-float", at((*LIM, "limit"), 2.5), True),
    ("trial-empty", at(("trial",), {}), True),
    ("trial-time-length-integral-float", at(("trial", "time_length"), 3.0), True),
    ("trial-time-length-zero", at(("trial", "time_length"), 0), True),
    ("trial-time-length-negative", at(("trial", "time_length"), -1), True),
    ("trial-time-length-big", at(("trial", "time_length"), 10**20), True),
    ("trial-credit-negative", at(("trial", "credit"), -2.5), True),
    ("features-empty", at(("features",), []), True),
    ("feature-name-only", at(("features", 0), {"name": "sso"}), True),
    ("feature-name-empty", at(("features", 0, "name"), ""), True),
    ("add-ons-empty", at(("add_ons",), []), True),
    ("limits-empty", at(("limits",), []), True),
    ("created-at-offset", at(("created_at",), "2026-01-15T09:30:00.5+05:30"), True),
    ("created-at-lowercase", at(("created_at",), "2026-01-15t09:30:00z"), True),
    ("created-at-year-1-positive-offset", at(("created_at",), "0001-01-01T00:30:00+00:59"), True),
    # -- rejected: required -----------------------------------------------------
    ("missing-name", at(("name",), MISSING), False),
    ("missing-period", at(("period",), MISSING), False),
    ("missing-metered-components", at(("metered_components",), MISSING), False),
    ("component-missing-meter-name", at((*MC, "meter_name"), MISSING), False),
    ("component-missing-meter-display-name", at((*MC, "meter_display_name"), MISSING), False),
    ("component-missing-price-scheme", at((*MC, "price_scheme"), MISSING), False),
    ("feature-missing-name", at(("features", 0, "name"), MISSING), False),
    ("add-on-feature-missing-name", at((*AO, "feature", "name"), MISSING), False),
    ("limit-feature-missing-name", at((*LIM, "feature", "name"), MISSING), False),
    ("add-on-missing-feature", at((*AO, "feature"), MISSING), False),
    ("add-on-missing-price", at((*AO, "price"), MISSING), False),
    ("add-on-missing-price-scheme-type", at((*AO, "price_scheme_type"), MISSING), False),
    ("add-on-missing-single-use", at((*AO, "single_use"), MISSING), False),
    ("add-on-missing-quantity-enabled", at((*AO, "quantity_enabled"), MISSING), False),
    ("limit-missing-feature", at((*LIM, "feature"), MISSING), False),
    ("limit-missing-limit", at((*LIM, "limit"), MISSING), False),
    ("root-array", [MIN_PLAN], False),
    ("root-null", None, False),
    ("root-string", "starter", False),
    # -- rejected: enums ----------------------------------------------------------
    ("period-capitalised", at(("period",), "Monthly"), False),
    ("period-upper", at(("period",), "MONTHLY"), False),
    ("period-unknown", at(("period",), "weekly"), False),
    ("period-yearly", at(("period",), "yearly"), False),
    ("period-empty", at(("period",), ""), False),
    ("period-null", at(("period",), None), False),
    ("period-number", at(("period",), 1), False),
    ("period-array", at(("period",), ["monthly"]), False),
    ("scheme-type-lower", at((*PS, "scheme_type"), "flat"), False),
    ("scheme-type-title", at((*PS, "scheme_type"), "Tiered"), False),
    ("scheme-type-unknown", at((*PS, "scheme_type"), "LINEAR"), False),
    ("scheme-type-empty", at((*PS, "scheme_type"), ""), False),
    ("scheme-type-null", at((*PS, "scheme_type"), None), False),
    ("scheme-type-number", at((*PS, "scheme_type"), 0), False),
    # -- rejected: minimum -------------------------------------------------------
    ("base-price-negative", at(("base_price",), -1), False),
    ("base-price-slightly-negative", at(("base_price",), -0.01), False),
    ("base-price-tiny-negative", at(("base_price",), -5e-324), False),
    ("minimum-charge-negative", at(("minimum_charge",), -1), False),
    ("tier-price-negative", at((*TIER, "price"), -1), False),
    ("tier-price-slightly-negative", at((*TIER, "price"), -0.0001), False),
    # -- rejected: type mismatches -----------------------------------------------
    ("name-null", at(("name",), None), False),
    ("name-number", at(("name",), 3), False),
    ("name-over-length-limit", at(("name",), "p" * (MAX_NAME_LENGTH + 1)), False),
    ("display-name-null", at(("display_name",), None), False),
    ("description-bool", at(("description",), True), False),
    ("external-uuid-number", at(("external_uuid",), 123), False),
    ("base-price-string", at(("base_price",), "10"), False),
    ("base-price-bool", at(("base_price",), True), False),
    ("base-price-false", at(("base_price",), False), False),
    ("base-price-null", at(("base_price",), None), False),
    ("base-price-array", at(("base_price",), [10]), False),
    ("base-price-object", at(("base_price",), {"amount": 10}), False),
    ("base-price-frequency-number", at(("base_price_frequency",), 1), False),
    ("minimum-charge-string", at(("minimum_charge",), "0"), False),
    ("minimum-charge-bool", at(("minimum_charge",), False), False),
    ("minimum-charge-null", at(("minimum_charge",), None), False),
    ("metered-components-object", at(("metered_components",), COMPONENT), False),
    ("metered-components-null", at(("metered_components",), None), False),
    ("metered-components-string", at(("metered_components",), "api_calls"), False),
    ("metered-components-number-item", at(("metered_components",), [1]), False),
    ("metered-components-null-item", at(("metered_components",), [None]), False),
    ("metered-components-array-item", at(("metered_components",), [[]]), False),
    ("component-meter-name-number", at((*MC, "meter_name"), 1), False),
    ("component-meter-display-name-null", at((*MC, "meter_display_name"), None), False),
    ("component-display-name-number", at((*MC, "display_name"), 1), False),
    ("component-price-scheme-null", at(PS, None), False),
    ("component-price-scheme-array", at(PS, [COMPONENT["price_scheme"]]), False),
    ("component-price-scheme-string", at(PS, "TIERED"), False),
    ("component-limit-string", at((*MC, "limit"), "5"), False),
    ("component-limit-bool", at((*MC, "limit"), True), False),
    ("component-minimum-charge-string", at((*MC, "minimum_charge"), "1"), False),
    ("component-watermark-null", at((*MC, "watermark"), None), False),
    ("unit-name-number", at((*PS, "unit_name"), 1), False),
    ("prices-object", at((*PS, "prices"), {"price": 1}), False),
    ("prices-null", at((*PS, "prices"), None), False),
    ("prices-number-item", at((*PS, "prices"), [1]), False),
    ("prices-null-item", at((*PS, "prices"), [None]), False),
    ("tier-price-string", at((*TIER, "price"), "1"), False),
    ("tier-price-bool", at((*TIER, "price"), True), False),
    ("tier-price-null", at((*TIER, "price"), None), False),
    ("tier-cap-string", at((*TIER, "cap"), "100"), False),
    ("tier-cap-bool", at((*TIER, "cap"), True), False),
    ("tier-cap-array", at((*TIER, "cap"), []), False),
    ("tier-cap-object", at((*TIER, "cap"), {}), False),
    ("features-object", at(("features",), FEATURE), False),
    ("features-string-item", at(("features",), ["sso"]), False),
    ("features-null", at(("features",), None), False),
    ("feature-name-null", at(("features", 0, "name"), None), False),
    ("feature-display-name-number", at(("features", 0, "display_name"), 2), False),
    ("feature-description-null", at(("features", 0, "description"), None), False),
    ("add-ons-object", at(("add_ons",), ADD_ON), False),
    ("add-on-feature-string", at((*AO, "feature"), "extra_seats"), False),
    ("add-on-feature-null", at((*AO, "feature"), None), False),
    ("add-on-feature-array", at((*AO, "feature"), [{"name": "extra_seats"}]), False),
    ("add-on-price-string", at((*AO, "price"), "25"), False),
    ("add-on-price-null", at((*AO, "price"), None), False),
    ("add-on-price-bool", at((*AO, "price"), False), False),
    ("add-on-price-scheme-type-number", at((*AO, "price_scheme_type"), 1), False),
    ("add-on-single-use-string", at((*AO, "single_use"), "true"), False),
    ("add-on-single-use-zero", at((*AO, "single_use"), 0), False),
    ("add-on-single-use-null", at((*AO, "single_use"), None), False),
    ("add-on-quantity-enabled-one", at((*AO, "quantity_enabled"), 1), False),
    ("add-on-immediately-charge-null", at((*AO, "immediately_charge"), None), False),
    ("add-on-immediately-charge-string", at((*AO, "immediately_charge"), "yes"), False),
    ("add-on-limit-string", at((*AO, "limit"), "100"), False),
    ("add-on-price-frequency-number", at((*AO, "price_frequency"), 1), False),
    ("limits-object", at(("limits",), LIMIT), False),
    ("limit-limit-null", at((*LIM, "limit"), None), False),
    ("limit-limit-string", at((*LIM, "limit"), "10"), False),
    ("limit-limit-bool", at((*LIM, "limit"), True), False),
    ("limit-feature-array", at((*LIM, "feature"), [{"name": "seats"}]), False),
    ("trial-null", at(("trial",), None), False),
    ("trial-array", at(("trial",), [TRIAL]), False),
    ("trial-string", at(("trial",), "14 days"), False),
    ("trial-time-length-fraction", at(("trial", "time_length"), 3.5), False),
    ("trial-time-length-almost-integral", at(("trial", "time_length"), 3.0000001), False),
    ("trial-time-length-string", at(("trial", "time_length"), "3"), False),
    ("trial-time-length-bool", at(("trial", "time_length"), True), False),
    ("trial-time-length-null", at(("trial", "time_length"), None), False),
    ("trial-time-unit-name-number", at(("trial", "time_unit_name"), 1), False),
    ("trial-credit-string", at(("trial", "credit"), "50"), False),
    ("trial-credit-null", at(("trial", "credit"), None), False),
    ("trial-credit-bool", at(("trial", "credit"), True), False),
    # -- rejected: formats ---------------------------------------------------------
    ("created-at-no-timezone", at(("created_at",), "2026-01-15T09:30:00"), False),
    ("created-at-invalid-date", at(("created_at",), "2026-04-31T00:00:00Z"), False),
    ("created-at-leap-second", at(("created_at",), "2016-12-31T23:59:60Z"), False),
    ("created-at-number", at(("created_at",), 20260115), False),
    ("created-at-null", at(("created_at",), None), False),
]


# ---------------------------------------------------------------------------
# The corpus tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "expected"), params(CUSTOMER_CASES))
def test_customer_agrees_with_seed_schema(payload: Any, expected: bool) -> None:
    check_case(Customer, customer_validator(), payload, expected)


@pytest.mark.parametrize(("payload", "expected"), params(PRICE_PLAN_CASES))
def test_price_plan_agrees_with_seed_schema(payload: Any, expected: bool) -> None:
    check_case(PricePlan, price_plan_validator(), payload, expected)


# The schemas we publish (docs/schemas, generated from the models) reach the same verdicts.
@pytest.mark.parametrize(("payload", "expected"), params(CUSTOMER_CASES))
def test_the_published_customer_schema_agrees_with_the_seed(payload: Any, expected: bool) -> None:
    check_case(Customer, generated_validator("customer.schema.json"), payload, expected)


@pytest.mark.parametrize(("payload", "expected"), params(PRICE_PLAN_CASES))
def test_the_published_price_plan_schema_agrees_with_the_seed(payload: Any, expected: bool) -> None:
    check_case(PricePlan, generated_validator("price_plan.schema.json"), payload, expected)


@pytest.mark.parametrize(
    ("cases", "at_least"), [(CUSTOMER_CASES, 60), (PRICE_PLAN_CASES, 90)], ids=["customer", "plan"]
)
def test_corpus_is_broad_and_pure_json(cases: list[Case], at_least: int) -> None:
    names = [name for name, _, _ in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    assert len(cases) >= at_least
    verdicts = [ok for _, _, ok in cases]
    assert verdicts.count(True) >= 20 and verdicts.count(False) >= 20
    for name, payload, _ in cases:
        assert json.loads(json.dumps(payload, allow_nan=False)) == payload, name


def _walk(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict):
        return [schema, *(s for v in schema.values() for s in _walk(v))]
    if isinstance(schema, list):
        return [s for v in schema for s in _walk(v)]
    return []


@pytest.mark.parametrize(
    ("seed", "cases"),
    [(CUSTOMER_SEED, CUSTOMER_CASES), (PRICE_PLAN_SEED, PRICE_PLAN_CASES)],
    ids=["customer", "plan"],
)
def test_corpus_covers_every_keyword_of_the_schema(seed: str, cases: list[Case]) -> None:
    """Every `required` name is missing in some case, every enum value has a case, and
    every `format` field has cases (guards the corpus against schema drift)."""
    schema = load_seed_schema(seed)
    text = " ".join(name for name, _, _ in cases)
    for node in _walk(schema):
        for name in node.get("required", []):
            assert f"missing-{name.replace('_', '-')}" in text, name
        for value in node.get("enum", []):
            assert f"-{value.lower()}" in text, value
        if "format" in node:
            assert {"date-time": "created-at", "email": "email", "uri": "url"}[node["format"]] in text


def test_extra_fields_are_kept() -> None:
    customer = Customer.model_validate({"name": "a", "plan": "gold"})
    assert customer.model_extra == {"plan": "gold"}
    plan = PricePlan.model_validate(at((*TIER, "note"), "n"))
    assert plan.metered_components[0].price_scheme.prices is not None
    assert plan.metered_components[0].price_scheme.prices[1].model_extra == {"note": "n"}


def test_out_of_utc_range_instants_keep_their_offset_and_round_trip() -> None:
    early = Customer.model_validate({"name": "a", "created_at": "0001-01-01T00:00:00+01:00"})
    assert early.created_at is not None and early.created_at.utcoffset() is not None
    assert early.created_at < datetime(1, 1, 1, 1, tzinfo=UTC)
    dumped = early.model_dump(mode="json", exclude_none=True)
    assert Customer.model_validate(dumped).created_at == early.created_at
    assert customer_validator().is_valid(dumped)


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_outside_the_agreement(number: float) -> None:
    """Not JSON values (though `json.loads("1e400")` yields inf). jsonschema counts
    them as numbers; the models refuse them on purpose, money must stay finite."""
    payload = at(("trial", "credit"), number)
    assert price_plan_validator().is_valid(payload)
    assert not model_verdict(PricePlan, payload)[0]


# ---------------------------------------------------------------------------
# Property test: schema-shaped payloads with random deviations
# ---------------------------------------------------------------------------
#
# `shaped(schema, noise)` follows the schema; `noise` is the chance (in percent), at
# every node, of a deviation: any JSON value instead, a wrong-case enum, a malformed
# date-time, a negative number under `minimum`, a missing required field. At noise 0
# the payload is valid, so accepted and rejected payloads both come up often.

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=8), children, max_size=3),
    ),
    max_leaves=8,
)


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


OFFSETS = st.one_of(
    st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
    st.builds(lambda s, h, m: f"{s}{h}:{m}", st.sampled_from("+-"), _two(0, 23), _two(0, 59)),
)
FRACTIONS = st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12).map(lambda f: "." + f))


@st.composite
def valid_date_times(draw: st.DrawFn) -> str:
    # Naive on purpose: Hypothesis wants naive bounds, and the offset is drawn and written below.
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))  # noqa: DTZ001
    sep = draw(st.sampled_from("Tt"))
    tail = draw(st.sampled_from(["", "", "", "\n"]))  # one final "\n" passes the checker's `$`
    return (
        f"{moment.year:04d}-{moment:%m-%d}{sep}{moment:%H:%M:%S}"
        f"{draw(FRACTIONS)}{draw(OFFSETS)}{tail}"
    )


@st.composite
def date_times(draw: st.DrawFn) -> str:
    """RFC 3339-ish strings: mostly in range, sometimes not, in every spelling."""
    wide = draw(st.integers(0, 3)) == 0
    year = draw(st.one_of(st.sampled_from([0, 1, 1970, 2024, 2025, 9999]), st.integers(0, 9999)))
    month = draw(_two(0, 13) if wide else _two(1, 12))
    day = draw(_two(0, 32) if wide else _two(1, 28))
    hour = draw(_two(0, 24) if wide else _two(0, 23))
    minute = draw(_two(0, 60) if wide else _two(0, 59))
    second = draw(_two(0, 61) if wide else st.one_of(_two(0, 59), st.just("60")))
    sep = draw(st.sampled_from(["T", "t", " "]))
    fraction = draw(st.one_of(FRACTIONS, st.just(".")))
    offset = draw(st.one_of(OFFSETS, st.sampled_from(["", "+0100", "+24:00", "+01:60"])))
    tail = draw(st.sampled_from(["", "", "", "\n", "\n\n", " "]))
    return f"{year:04d}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{offset}{tail}"


VALID_URIS = st.one_of(
    st.sampled_from(
        ["https://example.com", "https://example.com/a?b=c#d", "mailto:a@b.c", "urn:isbn:0451450523"]
    ),
    st.text("abcxyz019-._~", max_size=8).map(lambda p: f"https://example.com/{p}"),
)
VALID_FORMATS: dict[str, st.SearchStrategy[str]] = {
    "date-time": valid_date_times(),
    "email": st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=6), st.text(max_size=6)),
    "uri": VALID_URIS,
}
ANY_FORMATS: dict[str, st.SearchStrategy[str]] = {
    "date-time": st.one_of(date_times(), st.text(max_size=12)),
    "email": st.text(max_size=10),
    "uri": st.one_of(
        st.sampled_from(
            ["/relative/path", "example.com", "", "http://example.com/a b", "https://example.com\n"]
        ),
        st.builds(lambda s, r: f"{s}:{r}", st.sampled_from(["http", "x-y", "1bad", ""]), st.text(max_size=8)),
        st.text(max_size=10),
    ),
}
FINITE = st.floats(allow_nan=False, allow_infinity=False)
NUMBERS = st.one_of(
    st.integers(-1000, 1000),
    FINITE,
    st.sampled_from([0, 0.0, -0.0, 1e-9, -1e-9, 5e-324, -5e-324, 1e300, -1e300]),
)
INTEGRAL = st.one_of(st.integers(), st.integers(-1000, 1000).map(float))


def _mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any], noise: int) -> st.SearchStrategy[Any]:
    if noise == 0:
        return valid
    return st.integers(0, 99).flatmap(lambda roll: other if roll < noise else valid)


def shaped(schema: dict[str, Any], definitions: Mapping[str, Any], noise: int) -> st.SearchStrategy[Any]:
    """Values of `schema`'s shape; at each node, `noise`% of the time any JSON value."""
    if "$ref" in schema:
        target = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        return st.deferred(lambda: shaped(target, definitions, noise))
    fitting = _fitting(schema, definitions, noise)
    if schema.get("nullable") is True:
        fitting = st.one_of(fitting, st.none())
    return _mostly(fitting, JSON_VALUES, noise)


def _fitting(schema: dict[str, Any], definitions: Mapping[str, Any], noise: int) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if "enum" in schema:
        values = [v for v in schema["enum"] if isinstance(v, str)]
        variants = [f(v) for v in values for f in (str.lower, str.title, str.upper)]
        return _mostly(st.sampled_from(values), st.one_of(st.sampled_from(variants), st.text(max_size=8)), noise * 3)
    if kind == "string":
        fmt = schema.get("format")
        if fmt is None:
            return st.text(max_size=12)
        return _mostly(VALID_FORMATS[fmt], ANY_FORMATS[fmt], noise * 3)
    if kind == "number":
        if "minimum" in schema:
            low = schema["minimum"]
            at_least = st.one_of(
                st.integers(low, low + 1000), st.floats(min_value=low, allow_nan=False, allow_infinity=False),
            )
            return _mostly(at_least, NUMBERS, noise * 3)
        return NUMBERS
    if kind == "integer":
        return _mostly(INTEGRAL, st.one_of(FINITE, st.sampled_from([0.5, 3.5, -2.25, 1e-9])), noise * 3)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(shaped(schema.get("items", {}), definitions, noise), max_size=3)
    if kind == "object":
        return _objects(schema, definitions, noise)
    return JSON_VALUES


def _objects(schema: dict[str, Any], definitions: Mapping[str, Any], noise: int) -> st.SearchStrategy[Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    extra_keys = st.one_of(
        st.text(max_size=6),
        # with noise, an "extra" key may overwrite a declared one with any JSON value
        st.sampled_from(sorted(properties) if noise and properties else ["x-extra"]),
    )

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            keep = 100 - noise if name in required else 40
            if draw(st.integers(0, 99)) < keep:
                out[name] = draw(shaped(sub, definitions, noise))
        if draw(st.integers(0, 4)) == 0:
            for key, value in draw(st.dictionaries(extra_keys, JSON_VALUES, max_size=2)).items():
                if key not in properties or noise:
                    out[key] = value
        return out

    return build()


NOISE_LEVELS = [0, 1, 3, 10, 30]


def payloads(seed: str) -> st.SearchStrategy[Any]:
    schema = load_seed_schema(seed)
    definitions = schema.get("definitions", {})
    return st.sampled_from(NOISE_LEVELS).flatmap(lambda noise: shaped(schema, definitions, noise))


PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _agree(model: type[pydantic.BaseModel], validator: Any, payload: Any) -> None:
    schema_ok, schema_why = schema_verdict(validator, payload)
    model_ok, model_why = model_verdict(model, payload)
    assert model_ok == schema_ok, (
        f"schema {schema_ok} ({schema_why or 'valid'}) vs {model.__name__} {model_ok} "
        f"({model_why or 'accepted'}) for {payload!r}"
    )


@PROPERTY_SETTINGS
@given(payloads(CUSTOMER_SEED))
def test_customer_agrees_on_generated_payloads(payload: Any) -> None:
    _agree(Customer, customer_validator(), payload)
    _agree(Customer, generated_validator("customer.schema.json"), payload)


@PROPERTY_SETTINGS
@given(payloads(PRICE_PLAN_SEED))
def test_price_plan_agrees_on_generated_payloads(payload: Any) -> None:
    _agree(PricePlan, price_plan_validator(), payload)
    _agree(PricePlan, generated_validator("price_plan.schema.json"), payload)


@settings(max_examples=300, deadline=None)
@given(st.one_of(date_times(), valid_date_times()))
def test_date_time_strings_agree(text: str) -> None:
    _agree(Customer, customer_validator(), {"name": "a", "created_at": text})
    _agree(PricePlan, price_plan_validator(), {**MIN_PLAN, "created_at": text})


def _has_contact_info(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("contact_info"), dict) and len(payload["contact_info"]) >= 3


def _has_price_tiers(payload: dict[str, Any]) -> bool:
    components = payload.get("metered_components")
    if not isinstance(components, list):
        return False
    for component in components:
        scheme = component.get("price_scheme") if isinstance(component, dict) else None
        if isinstance(scheme, dict) and isinstance(scheme.get("prices"), list) and scheme["prices"]:
            return True
    return False


@pytest.mark.parametrize(
    ("seed", "model", "validator", "deep"),
    [
        (CUSTOMER_SEED, Customer, customer_validator, _has_contact_info),
        (PRICE_PLAN_SEED, PricePlan, price_plan_validator, _has_price_tiers),
    ],
    ids=["customer", "plan"],
)
@pytest.mark.parametrize("accepted", [True, False], ids=["accepted", "rejected"])
def test_generator_reaches_both_verdicts_deep_inside(
    seed: str,
    model: type[pydantic.BaseModel],
    validator: Callable[[], Any],
    deep: Callable[[dict[str, Any]], bool],
    accepted: bool,
) -> None:
    """The property tests are not vacuous: the same generator yields accepted and
    rejected payloads that reach nested shapes (contact_info; price tiers)."""

    def fits(payload: Any) -> bool:
        return isinstance(payload, dict) and deep(payload) and validator().is_valid(payload) == accepted

    found = find(
        payloads(seed),
        fits,
        settings=settings(database=None, max_examples=1000, phases=[Phase.generate]),
    )
    _agree(model, validator(), found)

"""Route matching that keeps percent-encoded names whole (see RawPathRoute)."""

from __future__ import annotations

from urllib.parse import unquote

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope


class RawPathRoute(APIRoute):
    """Matches on the path as the client sent it and decodes each parameter afterwards.

    Starlette matches routes against the decoded path, where a name containing '/' (sent
    as %2F) becomes two segments and `/customers/a%2Fsubscriptions` would be taken for the
    subscriptions of `a`. Matching the raw path keeps every encoded character inside its
    segment; without a raw path (or with a non-ASCII one) the decoded path is used.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path")
        if scope["type"] != "http" or not isinstance(raw, bytes) or not raw.isascii():
            return super().matches(scope)
        match, child_scope = super().matches({**scope, "path": raw.decode("ascii")})
        if match is not Match.NONE:
            params = dict(child_scope.get("path_params", {}))
            for name in self.param_convertors:
                if isinstance(params.get(name), str):
                    params[name] = unquote(params[name])
            child_scope["path_params"] = params
        return match, child_scope

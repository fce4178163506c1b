"""Who may call what (SPEC-api.md "Security"), attached where the routers are mounted (dtms.api.app).

`require_key` guards every protected router: 401 without a valid key, 403 when the key lacks the route's
scope, 429 past the caller's rate. The scope a route needs is GET/HEAD → read, any other method → trade,
unless the route declares `openapi_extra=ADMIN` (pause/resume, registry hand-over, /paper writes).
`limit_open` is the open routes' dependency (the health routes and metrics): no key, a rate per address.
With DTMS_AUTH=off (loopback only, dtms.config) no key is asked and every caller is limited per address."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Request, Security
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from dtms.api.limits import Rate, RateClass, RateLimiter
from dtms.api.models import errors
from dtms.config import Settings
from dtms.guardian.errors import ServiceError
from dtms.keys import HEADER, ApiKey, KeySetup, Scope

SCOPE_KEY = "x-dtms-scope"
ADMIN: dict[str, Any] = {SCOPE_KEY: Scope.ADMIN.value}
"""`openapi_extra` of a route that needs the admin scope."""
OPEN_RESPONSES: dict[int | str, dict[str, Any]] = errors(429)
PROTECTED_RESPONSES: dict[int | str, dict[str, Any]] = errors(401, 403, 429, 503)
"""Every protected operation may answer these (503: the store is unavailable, the lease was lost)."""


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class RateLimited(ServiceError):
    status, code = 429, "rate_limited"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the key's name, or None with DTMS_AUTH=off."""

    name: str | None

    def requested_by(self, claimed: str) -> str:
        """The name journaled as `requested_by`: the key's name; the caller's word only without keys."""
        return self.name if self.name is not None else claimed


@dataclass(frozen=True)
class Gate:
    """The app's keys and rate buckets (app.state.gate)."""

    keys: KeySetup
    limiter: RateLimiter | None

    @property
    def enabled(self) -> bool:
        return self.keys.keyring is not None


def make_gate(settings: Settings, keys: KeySetup) -> Gate:
    limiter = (
        RateLimiter(
            {
                RateClass.WRITE: Rate(settings.rate_limit_write_per_s, settings.rate_limit_write_burst),
                RateClass.QUERY: Rate(settings.rate_limit_query_per_s, settings.rate_limit_query_burst),
            }
        )
        if settings.rate_limit_enabled
        else None
    )
    return Gate(keys, limiter)


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def _address(request: Request) -> str:
    """The peer's address as the socket saw it (a proxy's X-Forwarded-For is not trusted)."""
    return f"addr:{request.client.host if request.client else '-'}"


def _charge(gate: Gate, who: str, request: Request) -> None:
    if gate.limiter is None:
        return
    kind = RateClass.of(request.method)
    wait = gate.limiter.take(who, kind)
    if wait is not None:
        rate = gate.limiter.rates[kind]
        raise RateLimited(
            f"too many {kind.value} requests ({rate}); retry in {wait} s",
            {"retry_after": wait, "class": kind.value, "rate_per_s": rate.per_s, "burst": rate.burst},
            retry_after=wait,
        )


def required_scope(route: Any, method: str) -> Scope:
    """The scope a protected route needs: declared (openapi_extra=ADMIN), else by its method."""
    extra = route.openapi_extra if isinstance(route, APIRoute) else None
    declared = extra.get(SCOPE_KEY) if extra else None
    if declared is not None:
        return Scope(declared)
    return Scope.READ if method.upper() in ("GET", "HEAD") else Scope.TRADE


_key_header = APIKeyHeader(
    name=HEADER, auto_error=False, scheme_name="ApiKey", description="the API key (SPEC-api.md Security)"
)
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer", description="the API key as a bearer token")


async def require_key(
    request: Request,
    header_key: Annotated[str | None, Security(_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The protected routers' dependency (FastAPI runs it once per request, also when a route asks for
    the Principal): authenticate, check the scope, then take a token from the key's bucket."""
    gate = _gate(request)
    keyring = gate.keys.keyring
    if keyring is None:  # DTMS_AUTH=off
        _charge(gate, _address(request), request)
        request.state.principal = anonymous = Principal(None)
        return anonymous
    presented = header_key or (bearer.credentials if bearer is not None else None)
    key: ApiKey | None = keyring.match(presented) if presented else None
    if key is None:
        _charge(gate, _address(request), request)  # guessing keys costs the address's tokens
        raise StarletteHTTPException(
            401,
            f"an API key is required: send it in {HEADER} (or Authorization: Bearer)"
            if not presented
            else "the API key is not valid",
            headers={"WWW-Authenticate": f'ApiKey header="{HEADER}", Bearer realm="dtms"'},
        )
    needed = required_scope(request.scope.get("route"), request.method)
    if not key.allows(needed):
        raise Forbidden(
            f"the key {key.name!r} lacks the {needed.value} scope",
            {"key": key.name, "scope": key.scope.value, "required": needed.value},
        )
    _charge(gate, f"key:{key.name}", request)
    request.state.principal = principal = Principal(key.name)  # also for dtms.api.metrics
    return principal


async def limit_open(request: Request) -> None:
    """The open routes' dependency: no key, a token from the remote address's bucket."""
    _charge(_gate(request), _address(request), request)


def api_routes(app: FastAPI) -> Iterator[RouteContext]:
    """Every API route as the app serves it, with the dependencies of the router it was mounted by
    (this FastAPI includes routers lazily: app.routes lists the included routers, not their routes)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def guard_of(route: RouteContext) -> str | None:
    """'key' or 'open' for a route mounted with one of this module's dependencies, else None."""
    calls = {d.dependency for d in route.dependencies}
    if require_key in calls:
        return "key"
    if limit_open in calls:
        return "open"
    return None


def check_guarded(app: FastAPI) -> None:
    """Every API route is mounted with a guard: a route added without one stops the app from being
    built. The OpenAPI document states each protected operation's scope (`x-dtms-scope`)."""
    scopes: dict[tuple[str, str], str] = {}
    for route in api_routes(app):
        methods = sorted(route.methods or ())
        guard = guard_of(route)
        if guard is None:
            raise RuntimeError(f"{methods} {route.path} is mounted without auth (dtms.api.auth)")
        if guard == "key":
            for method in methods:
                scopes[(str(route.path), method.lower())] = required_scope(route.original_route, method).value
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for (path, method), scope in scopes.items():
            operation = document.get("paths", {}).get(path, {}).get(method)
            if operation is not None:
                operation[SCOPE_KEY] = scope
        return document

    app.openapi = openapi  # type: ignore[method-assign]

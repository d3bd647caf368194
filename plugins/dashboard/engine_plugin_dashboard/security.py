"""Who may use the dashboard: a token in the printed address, kept in a
cookie after the first visit; control only as a POST carrying the token in a
header, from the dashboard's own origin.

Why a header for control and not the cookie alone: a page of another site
can make the browser send the cookie with a form POST (cross-site request
forgery), but it can neither read the token nor set a custom header on a
cross-origin request without the server's consent (CORS, never granted here).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

from engine_core import ConfigError

TOKEN_ENV = "ENGINE_DASHBOARD_TOKEN"
COOKIE = "engine_dashboard_token"
HEADER = "X-Engine-Token"
MIN_TOKEN = 16  # characters a token given by the user must have


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, given: str | None) -> str:
    """The token to require: ``given`` (``--token``), else ``ENGINE_DASHBOARD_TOKEN``,
    else a fresh random one, which only a loopback address may use: anyone on
    the network could otherwise reach a dashboard whose token they cannot be told."""
    token = given or os.environ.get(TOKEN_ENV) or None
    if token is None:
        if not is_loopback(host):
            raise ConfigError(
                f"dashboard: --host {host} opens the dashboard (and the engines' control) to the network; "
                f"give --token or set {TOKEN_ENV}"
            )
        return secrets.token_urlsafe(24)
    if len(token) < MIN_TOKEN:
        raise ConfigError(f"dashboard: the token must have at least {MIN_TOKEN} characters (--token or {TOKEN_ENV})")
    return token


def same(token: str, candidate: str | None) -> bool:
    return candidate is not None and hmac.compare_digest(token.encode(), candidate.encode())


def same_origin(origin: str | None, host_header: str | None) -> bool:
    """True when a request's ``Origin`` is the dashboard's own (scheme-less
    compare of host and port against the ``Host`` it was sent to). A request
    without ``Origin`` (curl, a script) is judged by its token alone."""
    if origin is None:
        return True
    if origin == "null" or host_header is None:
        return False
    return urlsplit(origin).netloc.lower() == host_header.lower()

"""Who may call the API: a pluggable check behind a Keystone-style token endpoint.

``noauth`` (loopback only, see ipam.config.check_api_config) lets every request
in and hands out a placeholder token; ``token`` hands out the configured static
token for the configured user and password and checks X-Auth-Token against it.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from fastapi import Request

from ipam.exceptions import NotAuthenticated


class AuthPlugin(Protocol):
    def issue_token(self, username: str, password: str) -> str | None:
        """The token for these credentials, or None when they are wrong."""

    def check(self, token: str | None) -> bool:
        """Whether a request carrying this X-Auth-Token may proceed."""


class NoAuth:
    def issue_token(self, username: str, password: str) -> str | None:
        return "noauth"

    def check(self, token: str | None) -> bool:
        return True


class StaticTokenAuth:
    def __init__(self, token: str, username: str, password: str | None) -> None:
        self._token, self._user, self._password = token, username, password

    def issue_token(self, username: str, password: str) -> str | None:
        if self._password is None:
            return None
        user_ok = hmac.compare_digest(username.encode(), self._user.encode())
        pass_ok = hmac.compare_digest(password.encode(), self._password.encode())
        return self._token if user_ok and pass_ok else None

    def check(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self._token.encode())


def require_token(request: Request) -> None:
    """FastAPI dependency on every resource route."""
    plugin: AuthPlugin = request.app.state.auth
    if not plugin.check(request.headers.get("x-auth-token")):
        raise NotAuthenticated("Authentication required: a valid X-Auth-Token header is needed.")

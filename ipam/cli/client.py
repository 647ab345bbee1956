"""A small REST client for the admin CLI: Neutron errors become one clear line."""

from __future__ import annotations

import os
from typing import Any

import httpx


class ApiError(Exception):
    pass


class Client:
    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 60
    ) -> None:
        self.url = (url or os.environ.get("OVIRT_IPAM_URL") or "http://127.0.0.1:9696").rstrip("/")
        token = token or os.environ.get("OVIRT_IPAM_TOKEN")
        headers = {"X-Auth-Token": token} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the ovirt-ipam API at {self.url}: {exc}") from None
        if resp.status_code >= 400:
            try:
                err = resp.json()["NeutronError"]
                message = f"{err['type']}: {err['message']}"
            except (ValueError, KeyError, TypeError):
                message = resp.text[:200]
            raise ApiError(f"{method} {path} failed ({resp.status_code}): {message}")
        return resp.json() if resp.content else None

    def find(self, collection: str, member: str, ref: str) -> dict[str, Any]:
        """A resource by id, or by name when the name is unique."""
        try:
            return self.request("GET", f"/v2.0/{collection}/{ref}")[member]
        except ApiError:
            pass
        found = self.request("GET", f"/v2.0/{collection}", params={"name": ref})[collection]
        if len(found) == 1:
            return found[0]
        if not found:
            raise ApiError(f"no {member} with id or name {ref!r}")
        raise ApiError(f"{len(found)} {collection} are named {ref!r}: use the id")

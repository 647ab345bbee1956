"""``GET /v2.0/dhcp-leases``: what the DHCP servers saw of each client (our extension,
issue 17), joined to ports by (network, MAC); ``?network_id=`` and ``?state=`` filter,
anything else is refused as Neutron refuses an unknown filter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from ipam.api.auth import require_token
from ipam.exceptions import BadRequest, InvalidInput
from ipam.store import leases as L
from ipam.store import validators

router = APIRouter(tags=["dhcp-leases"], dependencies=[Depends(require_token)])


@router.get("/v2.0/dhcp-leases", summary="List DHCP leases")
def list_leases(request: Request) -> dict[str, Any]:
    network_id = state = None
    for key, value in request.query_params.multi_items():
        if key == "network_id":
            network_id = validators.uuid_str(value, "network_id")
        elif key == "state":
            if value not in L.STATES:
                raise InvalidInput(
                    f"Invalid input for state. Reason: {value[:40]!r} is not one of "
                    f"{', '.join(L.STATES)}."
                )
            state = value
        else:
            raise BadRequest(f"[{key[:40]}] is invalid attribute for filtering")
    return {"dhcp_leases": request.app.state.store.list_leases(network_id, state)}

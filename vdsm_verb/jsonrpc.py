"""JSON-RPC 2.0 dispatch of the Host.* verbs over the bus, as VDSM's Bridge does it
in strict mode: parameters are given by name and must match the verb's (a missing or
unknown one is -32602, Invalid params, before the verb runs); an answer whose status
is not 0 becomes the JSON-RPC error with VDSM's code; its command_info ``ret`` key
becomes the result (True when there is none)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import COMMAND_INFO
from vdsm_verb.verb import DhcpVerb

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32600, -32601, -32602


def _error(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def dispatch(verb: DhcpVerb, request: dict[str, Any]) -> dict[str, Any]:
    req_id = request.get("id")
    if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
        return _error(req_id, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request")
    methods: dict[str, Callable[..., dict[str, Any]]] = {
        "Host.setDHCP": verb.set_dhcp,
        "Host.getDHCP": verb.get_dhcp,
    }
    method = request["method"]
    if method not in methods:
        return _error(req_id, METHOD_NOT_FOUND, f"Method not found: {method}")
    params = request.get("params") or {}
    if not isinstance(params, dict):
        return _error(req_id, INVALID_PARAMS, "Invalid params: give them by name")
    try:
        inspect.signature(methods[method]).bind(**params)
    except TypeError as exc:
        return _error(req_id, INVALID_PARAMS, f"Invalid params for {method}: {exc}")
    answer = methods[method](**params)
    status = answer["status"]
    if status["code"] != 0:
        return _error(req_id, status["code"], status["message"])
    ret = COMMAND_INFO.get(method.replace(".", "_"), {}).get("ret")
    return {"jsonrpc": "2.0", "id": req_id, "result": answer[ret] if ret else True}

"""VDSM's JSON-RPC bridge as a caller meets it, written for the tests.

``call(request)`` takes a JSON-RPC 2.0 request (named params) and answers as VDSM
does: the schema checks parameters and return values (strict mode: a mismatch is
-32602; lax mode: logged only); the arguments go to ``API.Global``'s method in the
schema's order; TypeError (a missing argument in lax mode) is -32603; an answer
whose status code is not 0 is the error with that code and message; command_info's
``ret`` key is the result, True when there is none."""

import logging

import schema_check
from vdsm import API
from vdsm.common import exception

log = logging.getLogger("DynamicBridge")

# The line VDSM's Bridge.py gains (Host.setDHCP needs none).
command_info = {
    "Host_getDHCP": {"ret": "info"},
}


def _error(req_id, code, message):
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


class DynamicBridge:
    def __init__(self, schema, strict):
        self.methods = {k: v for k, v in schema.items() if k != "types"}
        self.strict = strict

    def _inconsistency(self, message):
        if self.strict:
            raise exception.JsonRpcInvalidParamsError(message)
        log.debug("schema inconsistency: %s", message)

    def call(self, request):
        req_id, method = request.get("id"), request["method"]
        if method not in self.methods:
            return _error(req_id, -32601, "The method does not exist or is not available")
        params = request.get("params") or {}
        spec = self.methods[method].get("params", [])
        names = [p["name"] for p in spec]
        class_name, method_name = method.split(".", 1)
        try:
            try:
                schema_check.check_fields(spec, params, method)
            except schema_check.SchemaMismatch as e:
                self._inconsistency(str(e))
            args = [params[name] for name in names if name in params]
            fn = getattr(API.Global(), method_name)
            try:
                result = fn(*args)
            except TypeError as e:
                return _error(req_id, -32603, f"Internal JSON-RPC error: {e}")
            if result["status"]["code"]:
                return _error(req_id, result["status"]["code"], result["status"]["message"])
            ret_key = command_info.get(f"{class_name}_{method_name}", {}).get("ret")
            ret = result[ret_key] if ret_key else None
            if "return" in self.methods[method]:
                try:
                    schema_check.check(self.methods[method]["return"]["type"], ret, "return")
                except schema_check.SchemaMismatch as e:
                    self._inconsistency(str(e))
        except exception.VdsmException as e:
            return _error(req_id, e.code, str(e))
        return {"jsonrpc": "2.0", "id": req_id, "result": True if ret is None else ret}

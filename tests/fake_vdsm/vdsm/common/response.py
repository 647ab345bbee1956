"""VDSM's answer shapes: ``{"status": {"code", "message"}, ...}``."""

from vdsm.common.define import doneCode
from vdsm.common.define import errCode


def success(message=None, **kwargs):
    kwargs["status"] = {"code": doneCode["code"], "message": message or doneCode["message"]}
    return kwargs


def error(name, message=None):
    status = errCode[name]["status"]
    return {"status": {"code": status["code"], "message": message or status["message"]}}


def error_raw(code, message):
    return {"status": {"code": code, "message": message}}


def is_valid(res):
    return (
        isinstance(res, dict)
        and isinstance(res.get("status"), dict)
        and "code" in res["status"]
        and "message" in res["status"]
    )

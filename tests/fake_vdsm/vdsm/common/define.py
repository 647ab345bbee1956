from vdsm.common import exception

doneCode = {"code": 0, "message": "Done"}

errCode = {
    "unexpected": exception.UnexpectedError().response(),
    "unavail": exception.ResourceUnavailable().response(),
}

"""VDSM's exceptions the plug-in's answers go through: code, message, response()."""


class VdsmException(Exception):
    code = 0
    message = "Vdsm Exception"
    expected = False

    def __str__(self):
        return self.message

    def info(self):
        return {"code": self.code, "message": str(self)}

    def response(self):
        return {"status": self.info()}


class UnexpectedError(VdsmException):
    code = 16
    message = "Unexpected exception"


class ResourceUnavailable(VdsmException):
    code = 40
    message = "Resource unavailable"


class GeneralException(VdsmException):
    code = 100
    message = "General Exception"

    def __init__(self, *value):
        self.value = value

    def __str__(self):
        return f"{self.message}: {self.value!r}"


class JsonRpcInvalidParamsError(VdsmException):
    code = -32602
    message = "Invalid method parameter(s)"

    def __init__(self, reason):
        self.reason = reason

    def __str__(self):
        return f"{self.message}: {{'reason': {self.reason!r}}}"

"""VDSM's verb decorators, as the plug-in meets them.

Like VDSM's (made with the ``decorator`` package), the wrappers keep the method's
signature: a call with a missing argument raises TypeError before the method runs
(the Bridge turns that into -32603 in lax mode)."""

import functools
import inspect
import logging

from vdsm.common import exception
from vdsm.common import response

CALLS = []  # (logger name, method name) of every logged call


def _keeping_signature(func, body):
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        signature.bind(*args, **kwargs)  # TypeError here, as with VDSM's decorators
        return body(*args, **kwargs)

    return wrapper


def logged(on=""):
    def decorate(func):
        def body(*args, **kwargs):
            CALLS.append((on, func.__name__))
            log = logging.getLogger(on)
            log.info("START %s", func.__name__)
            ret = func(*args, **kwargs)
            log.info("FINISH %s return=%s", func.__name__, ret)
            return ret

        return _keeping_signature(func, body)

    return decorate


def method(func):
    def body(*args, **kwargs):
        try:
            ret = func(*args, **kwargs)
        except exception.VdsmException as e:
            return e.response()
        except Exception as e:
            return exception.GeneralException(str(e)).response()
        if response.is_valid(ret):
            return ret
        if ret is None:
            return response.success()
        return response.success(**ret)

    return _keeping_signature(func, body)

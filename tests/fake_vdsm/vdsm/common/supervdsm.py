"""supervdsm's proxy: ``getProxy().name(*args)`` calls the ``@expose`` function
``name`` of a module in ``vdsm.supervdsm_api``, found as supervdsmd finds them.

Arguments, results and exceptions are pickled both ways, as multiprocessing's
manager does between vdsmd and supervdsmd: what the plug-in sends or raises across
must survive that."""

import importlib
import pickle
import pkgutil

from vdsm import supervdsm_api

CALLS = []  # (name, args) of every call that reached supervdsm
_exposed = None


def _functions():
    global _exposed
    if _exposed is None:
        _exposed = {}
        for _, name, _ in pkgutil.iter_modules(supervdsm_api.__path__):
            module = importlib.import_module(f"{supervdsm_api.__name__}.{name}")
            for value in vars(module).values():
                if callable(value) and getattr(value, "exposed_api", False):
                    _exposed[value.__name__] = value
    return _exposed


class _Proxy:
    def __getattr__(self, name):
        def call(*args, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            CALLS.append((name, args))
            try:
                result = _functions()[name](*args, **kwargs)
            except Exception as e:
                raise pickle.loads(pickle.dumps(e)) from None
            return pickle.loads(pickle.dumps(result))

        return call


_proxy = _Proxy()


def getProxy():
    return _proxy

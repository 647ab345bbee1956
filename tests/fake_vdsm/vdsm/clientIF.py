import logging
import threading


class clientIF:
    _instance = None

    def __init__(self):
        self._networkSemaphore = threading.Semaphore()
        self.irs = None
        self.log = logging.getLogger("vds")

    @classmethod
    def getInstance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

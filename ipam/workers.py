"""API worker processes ([api] workers > 1).

The engine process binds bind_port once per worker (SO_REUSEPORT: the kernel spreads
new connections over the workers' sockets; one shared socket would let whichever
worker wakes first accept every pending connection, and keep-alive connections stay
where they were accepted) and spawns the workers, each a uvicorn server on its
socket. Spawned, not forked: a fresh interpreter each, so nothing of the engine
process's connections, threads or locks is inherited and no SQLAlchemy engine is
ever shared between processes. A worker that dies is replaced on the same socket
(the engine process keeps it listening, so its connections wait rather than fail);
SIGTERM or SIGINT stops them all. A worker is handed a WorkerApp: the engine's
configuration as resolved values (it reads no file again, and means what the
engine process read), the address of the engine process's wake-up hub and its pid;
it builds its API with ipam.server.worker_app.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from fastapi import FastAPI
from oslo_config import cfg
from uvicorn.config import STARTUP_FAILURE

from ipam import config

LOG = logging.getLogger(__name__)

Options = dict[str, dict[str, Any]]


def options_of(conf: cfg.ConfigOpts) -> Options:
    """Every ovirt-ipam option's value, by group, as the engine process resolved it."""
    out: Options = {}
    for group, opts in config.list_opts():
        section = conf if group == "DEFAULT" else conf[group]
        out[group] = {opt.dest: section[opt.dest] for opt in opts}
    return out


def restore(options: Options) -> cfg.ConfigOpts:
    """config.CONF of this (worker) process, holding exactly ``options``."""
    conf = config.CONF
    conf(
        [], project="ovirt-ipam", prog="ovirt-ipam", default_config_files=[], default_config_dirs=[]
    )
    for group, values in options.items():
        for name, value in values.items():
            conf.set_override(name, value, group=None if group == "DEFAULT" else group)
    return conf


class WorkerApp:
    """The app factory uvicorn calls in each worker (picklable: it crosses to the
    spawned process). A worker that cannot build its API exits with uvicorn's
    startup-failure code, which stops the engine rather than respawning it forever."""

    def __init__(self, options: Options, hub: bytes, engine_pid: int) -> None:
        self.options, self.hub, self.engine_pid = options, hub, engine_pid

    def __call__(self) -> FastAPI:
        from ipam import log, server

        conf = restore(self.options)
        log.setup(conf.debug)
        try:
            return server.worker_app(conf, self.hub, self.engine_pid)
        except Exception:
            LOG.exception("API worker could not start")
            sys.exit(STARTUP_FAILURE)


def listening_socket(host: str, port: int, backlog: int, shared: bool = True) -> socket.socket:
    """A TCP socket listening on host:port; ``shared``: beside the others of this
    port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise cfg.Error(f"[api] bind_host:bind_port {host}:{port}: {exc}") from None
    sock.set_inheritable(True)
    return sock


def worker_sockets(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` sockets sharing host:port. The port is first taken alone, so that
    another engine already serving it (with SO_REUSEPORT too) is an error rather than
    a silent share of its connections."""
    probe = listening_socket(host, port, backlog, shared=False)
    port = probe.getsockname()[1]  # bind_port 0: the port it got
    probe.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(listening_socket(host, port, backlog))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _worker_main(config: uvicorn.Config, sock: socket.socket) -> None:
    """A worker process: one uvicorn server on its socket (its app built by WorkerApp).
    One that never started serving exits with uvicorn's startup-failure code: it would
    fail the same way again (the app, TLS), so the engine stops instead."""
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except Exception:
        LOG.exception("API worker %d failed", os.getpid())
        sys.exit(1 if server.started else STARTUP_FAILURE)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Keeps one worker process per socket running until SIGTERM or SIGINT."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        self.config, self.sockets = config, sockets
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._stop = threading.Event()
        self._failed = False

    def _spawn(self, slot: int) -> BaseProcess:
        proc = self._ctx.Process(
            target=_worker_main,
            args=(self.config, self.sockets[slot]),
            name=f"ovirt-ipam-api-{slot}",
        )
        proc.start()
        return proc

    def _on_signal(self, signum: int, _frame: object) -> None:
        LOG.info("Engine process %d got signal %d: stopping the API workers", os.getpid(), signum)
        self._stop.set()

    def run(self) -> None:
        """Until SIGTERM or SIGINT; SystemExit(STARTUP_FAILURE) if a worker cannot start."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._procs = [self._spawn(slot) for slot in range(len(self.sockets))]
            while not self._stop.wait(0.5):
                self._replace_dead()
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self._failed:
            raise SystemExit(STARTUP_FAILURE)

    def _replace_dead(self) -> None:
        for slot, proc in enumerate(self._procs):
            if proc.is_alive():
                continue
            proc.join()
            if proc.exitcode == STARTUP_FAILURE:
                LOG.error("API worker %s could not start: the engine stops", proc.pid)
                self._failed = True
                self._stop.set()
                return
            LOG.warning(
                "API worker %s ended (exit code %s): starting another", proc.pid, proc.exitcode
            )
            self._procs[slot] = self._spawn(slot)

    def _stop_all(self, grace: float = 30.0) -> None:
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            proc.join(grace)
            if proc.is_alive():
                LOG.warning("API worker %s did not stop in %.0f s: killed", proc.pid, grace)
                proc.kill()
                proc.join()


def uvicorn_options(conf: cfg.ConfigOpts) -> dict[str, Any]:
    """How uvicorn serves the API, in the engine process and in each worker alike:
    our own logging (no uvicorn access log or Server header), HTTPS when configured."""
    tls = bool(conf.api.ssl_cert_file)
    return {
        "host": conf.api.bind_host,
        "port": conf.api.bind_port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "ssl_certfile": conf.api.ssl_cert_file if tls else None,
        "ssl_keyfile": conf.api.ssl_key_file if tls else None,
    }


def serve(conf: cfg.ConfigOpts, workers: int, hub: bytes) -> None:
    """Run ``workers`` API processes on [api] bind_host:bind_port until SIGTERM/SIGINT."""
    uv = uvicorn.Config(
        WorkerApp(options_of(conf), hub, os.getpid()), factory=True, **uvicorn_options(conf)
    )
    sockets = worker_sockets(conf.api.bind_host, conf.api.bind_port, workers, uv.backlog)
    try:
        Supervisor(uv, sockets).run()
    finally:
        for sock in sockets:
            sock.close()

"""A loopback relay into lab hosts: ``python -m ipam.lab.relay``.

Lab hosts are network namespaces with only their own loopback, so a broker on
the machine's 127.0.0.1 (RabbitMQ) is out of their reach. This process opens a
listening socket on 127.0.0.1:PORT inside each host's namespace (a thread may
enter a namespace, open a socket and come back; the socket stays there) and
relays every connection to the target address in its own namespace. Traffic stays
on loopback on both sides. With ``--tls-cert`` it terminates TLS in front of the
target (the tests put a TLS endpoint before a plain local RabbitMQ this way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import ssl

from dhcp_driver.netns import entered

LOG = logging.getLogger("ipam.lab.relay")
_CHUNK = 65536


def listening_socket(namespace: str, port: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:port inside the named namespace."""
    with entered(namespace):
        return socket.create_server(("127.0.0.1", port))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def serve(
    sockets: list[socket.socket], host: str, port: int, tls: ssl.SSLContext | None = None
) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            LOG.warning("cannot reach %s:%d: %s", host, port, exc)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    servers = [await asyncio.start_server(relay, sock=s, ssl=tls) for s in sockets]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("--port", type=int, required=True, help="port to listen on in each")
    parser.add_argument("--lab", help="the lab directory (names the lab it serves)")
    parser.add_argument("--tls-cert", help="terminate TLS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="the private key of --tls-cert")
    parser.add_argument("namespaces", nargs="*", help="(none: listen where this process runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    host, _, port = args.target.rpartition(":")
    if args.namespaces:
        sockets = [listening_socket(ns, args.port) for ns in args.namespaces]
    else:
        sockets = [socket.create_server(("127.0.0.1", args.port))]
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    where = ", ".join(args.namespaces) or "this namespace"
    LOG.info(
        "relaying %s127.0.0.1:%d in %s to %s", "TLS " if tls else "", args.port, where, args.target
    )
    asyncio.run(serve(sockets, host, int(port), tls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

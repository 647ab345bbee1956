"""Access (issue 7): the REST API over TLS by configuration, off loopback only with a
token; the bus over TLS (amqps://) to RabbitMQ, the broker's certificate checked;
credentials of the transport URL never logged; tight modes on the files services
write. Certificates are made for the test by its own CA (cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ipam.bus import contracts as C
from ipam.bus.messaging import Bus
from ipam.lab.harness import free_port
from ipam.polling import wait_for
from tests.faultlab import port_open, rabbitmq_vhost, record


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(tmp: Path, tag: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"test CA {tag}"))
        .issuer_name(_name(f"test CA {tag}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / f"ca-{tag}.pem", tmp / f"cert-{tag}.pem", tmp / f"key-{tag}.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


def test_api_over_tls_by_configuration(tmp_path: Path, engine_factory) -> None:  # type: ignore[no-untyped-def]
    ca, cert, key = make_ca(tmp_path, "api")
    other_ca, _, _ = make_ca(tmp_path, "other")
    engine = engine_factory(f"[api]\nssl_cert_file = {cert}\nssl_key_file = {key}\n", wait=False)
    url = f"https://127.0.0.1:{engine.port}"
    wait_for(lambda: _get_ok(url, ca), 30, "the engine over TLS", interval=0.1)
    assert httpx.get(url + "/v2.0/networks", verify=_ctx(ca)).status_code == 200
    with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
        httpx.get(f"http://127.0.0.1:{engine.port}/", timeout=5)
    with pytest.raises(httpx.ConnectError):  # a certificate of another CA is refused
        httpx.get(url + "/", verify=_ctx(other_ca), timeout=5)
    assert "on https://127.0.0.1" in engine.logs()
    record("access", "REST API over TLS by configuration", checks=3)


REFUSED = [
    ("[api]\nbind_host = 0.0.0.0\n", "noauth is only allowed on loopback"),
    ("[api]\nbind_host = 0.0.0.0\nauth_strategy = token\n", "needs [api] auth_token"),
    ("[api]\nssl_cert_file = /nonexistent.pem\n", "set both or neither"),
    (
        "[api]\nssl_cert_file = /nonexistent.pem\nssl_key_file = /nonexistent.key\n",
        "is not a readable file",
    ),
    ("[bus]\nssl_ca_file = /etc/hostname\n", "not amqps://"),
]


@pytest.fixture(scope="module")
def refused_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int | None, str]]:
    """An engine started on each configuration of REFUSED, all at once, each in a
    directory of its own: configuration -> (exit code, stderr); the exit code is None
    for one still running after 60 s (killed then)."""
    procs = {}
    try:
        for conf, _ in REFUSED:
            tmp = tmp_path_factory.mktemp("refused")
            path = tmp / "engine.conf"
            path.write_text(f"[DEFAULT]\nstate_path = {tmp}/state\n{conf}")
            procs[conf] = subprocess.Popen(
                [sys.executable, "-m", "ipam.cli.main", "engine", "--config-file", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        runs: dict[str, tuple[int | None, str]] = {}
        for conf, proc in procs.items():
            try:
                _, err = proc.communicate(timeout=60)
                runs[conf] = (proc.returncode, err)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                runs[conf] = (None, err)
        return runs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize(("conf", "error"), REFUSED)
def test_unsafe_or_broken_access_configuration_is_refused(
    refused_runs: dict[str, tuple[int | None, str]], conf: str, error: str
) -> None:
    returncode, stderr = refused_runs[conf]
    assert returncode == 2 and error in stderr, stderr


def _ctx(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _get_ok(url: str, ca: Path) -> bool:
    try:
        return httpx.get(url + "/", verify=_ctx(ca), timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A TLS endpoint in front of the local RabbitMQ (a vhost of the test's own):
    (amqps URL, the CA that signed it, another CA)."""
    ca, cert, key = make_ca(tmp_path, "broker")
    other_ca, _, _ = make_ca(tmp_path, "other")
    port = free_port()
    with rabbitmq_vhost() as url, open(tmp_path / "tls-relay.log", "w") as log:
        argv = [sys.executable, "-m", "ipam.lab.relay", "--target", "127.0.0.1:5672"]
        argv += ["--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
        relay = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: port_open(port), 20, "the TLS endpoint", interval=0.05)
            vhost = url.rsplit("/", 1)[1]
            yield f"amqps://guest:guest@127.0.0.1:{port}/{vhost}", ca, other_ca
        finally:
            relay.terminate()
            relay.wait(10)


@pytest.mark.rabbitmq
@pytest.mark.root  # rabbitmqctl (the test's vhost)
def test_bus_over_tls_checks_the_broker_certificate(
    tls_broker, tmp_path: Path, engine_factory
) -> None:
    url, ca, other_ca = tls_broker
    bus = Bus(url, tls={"ca_file": str(ca)})
    got: list[C.Envelope] = []
    stop = threading.Event()
    queue = f"ovirt-ipam.test.{uuid.uuid4().hex[:8]}"
    consumer = threading.Thread(target=bus.consume, args=(queue, lambda e, b: got.append(e), stop))
    consumer.start()
    sent = C.make("network.release", C.NetworkRelease(host="h1", network_id=str(uuid.uuid4())), "t")
    bus.publish(queue, sent)
    wait_for(lambda: got, 20, "the message over TLS")
    assert got[0].id == sent.id
    stop.set()
    consumer.join(10)
    bus.delete_queue(queue)
    bus.close()
    with pytest.raises(Exception, match=r"(?i)certificate"):  # no fallback to plaintext
        Bus(url, tls={"ca_file": str(other_ca)}).publish(queue, sent)

    # A whole engine on amqps://, with DEBUG logs: its credentials never reach the log.
    engine = engine_factory(
        f"[DEFAULT]\ntransport_url = {url}\ndebug = true\n[bus]\nssl_ca_file = {ca}\n"
    )
    host = f"tls-{uuid.uuid4().hex[:6]}"
    agent_bus = Bus(url, tls={"ca_file": str(ca)})
    request = C.make("sync.request", C.SyncRequest(host=host, networks=[]), host)
    env, _ = agent_bus.call(C.ENGINE_QUEUE, request, C.reply_queue(host), timeout=30)
    assert env.type == "sync.reply"
    agent_bus.delete_queue(C.reply_queue(host))
    agent_bus.close()
    logs = engine.logs()
    assert "guest:guest" not in logs and "amqps://guest:****@" in logs
    record("access", "bus over TLS (amqps://), broker certificate checked", checks=3)
    record("access", "transport URL credentials never logged (DEBUG engine log)", checks=1)


@pytest.mark.root
def test_files_the_services_write_have_tight_modes(world_factory) -> None:  # type: ignore[no-untyped-def]
    world = world_factory()
    world.serve()
    world.agent.start()
    world.wait_serving()
    port = world.port()
    world.wait_active(port)
    assert world.lease(port)
    state = world.tmp / f"agent-{world.agent.host}"
    loose = []
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not path.is_symlink():
            if path.suffix == ".pid" and not path.parent.stat().st_mode & 0o077:
                continue  # dnsmasq writes its pid file 0644 itself, in our 0700 directory
            loose.append((str(path), oct(mode)))
    assert not loose, loose
    engine_state = world.tmp / "state"
    assert stat.S_IMODE(engine_state.stat().st_mode) & 0o077 == 0
    db = engine_state / "ovirt-ipam.sqlite"
    assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0, oct(db.stat().st_mode)
    checked = len(list(state.rglob("*"))) + 2
    record("access", "files the services write: no group or other access", files=checked)

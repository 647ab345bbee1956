"""Configuration: the generated sample is current, unsafe settings are refused,
and the engine runs from nothing but a config file naming a state_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from oslo_config import cfg

from ipam import config
from ipam.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_sample_config_is_generated_and_current(tmp_path: Path) -> None:
    out = tmp_path / "sample.conf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--config-file",
            str(ROOT / "etc/oslo-config-generator/ovirt-ipam.conf"),
            "--output-file",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    committed = (ROOT / "etc/ovirt-ipam.conf.sample").read_text()
    assert out.read_text() == committed, (
        "etc/ovirt-ipam.conf.sample is stale: run "
        "oslo-config-generator --config-file etc/oslo-config-generator/ovirt-ipam.conf"
    )
    for option in (
        "state_path",
        "transport_url",
        "connection",
        "bind_host",
        "bind_port",
        "auth_strategy",
    ):
        assert f"#{option} =" in committed


def _conf(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in config.list_opts():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    path = tmp_path / "x.conf"
    path.write_text(text)
    conf(["--config-file", str(path)])
    return conf


def test_defaults_derive_from_state_path(tmp_path: Path) -> None:
    conf = _conf(tmp_path, f"[DEFAULT]\nstate_path = {tmp_path}\n")
    assert config.database_url(conf) == f"sqlite:///{tmp_path}/ovirt-ipam.sqlite"
    assert config.transport_url(conf) == f"filesystem://{tmp_path}/bus"
    relative = _conf(tmp_path, "[DEFAULT]\nstate_path = .state\n")
    here = Path.cwd() / ".state"
    assert config.database_url(relative) == f"sqlite:///{here}/ovirt-ipam.sqlite"
    assert config.transport_url(relative) == f"filesystem://{here}/bus"
    assert (conf.api.bind_host, conf.api.bind_port, conf.api.auth_strategy) == (
        "127.0.0.1",
        9696,
        "noauth",
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_noauth_off_loopback_is_refused(tmp_path: Path, host: str) -> None:
    conf = _conf(tmp_path, f"[api]\nbind_host = {host}\n")
    with pytest.raises(cfg.Error, match="only allowed on loopback"):
        config.check_api_config(conf)


def test_token_strategy_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(cfg.Error, match="auth_token"):
        config.check_api_config(_conf(tmp_path, "[api]\nauth_strategy = token\n"))
    config.check_api_config(
        _conf(tmp_path, "[api]\nbind_host = 0.0.0.0\nauth_strategy = token\nauth_token = t\n")
    )


def test_ready_timeout_stays_within_ovirt_engines_socket_timeout(tmp_path: Path) -> None:
    """oVirt engine gives up on an answer after 30 s: a port create must answer first."""
    assert _conf(tmp_path, "[dhcp]\nready_timeout = 25\n").dhcp.ready_timeout == 25
    with pytest.raises(ValueError, match="25"):
        _conf(tmp_path, "[dhcp]\nready_timeout = 30\n").dhcp.ready_timeout  # noqa: B018


def test_dns_domain_is_checked_and_canonical(tmp_path: Path) -> None:
    """[dns] domain: "ovirtlocal." by default, lower-cased, "" for none; one that breaks
    the rule (no final dot, a bad label) is a configuration error at start."""
    default = _conf(tmp_path, "")
    assert (config.dns_domain(default), default.dns.service_default) == ("ovirtlocal.", False)
    conf = _conf(tmp_path, "[dns]\ndomain = Lab.Example.\nservice_default = true\n")
    assert (config.dns_domain(conf), conf.dns.service_default) == ("lab.example.", True)
    assert config.dns_domain(_conf(tmp_path, "[dns]\ndomain =\n")) == ""
    for bad in ("example.org", "a_b.example.", "."):
        with pytest.raises(cfg.Error, match=r"\[dns\] domain"):
            config.dns_domain(_conf(tmp_path, f"[dns]\ndomain = {bad}\n"))


def test_engine_refuses_a_bad_dns_domain(tmp_path: Path) -> None:
    path = tmp_path / "e.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[dns]\ndomain = example.org\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ipam.cli.main", "engine", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "[dns] domain" in proc.stderr, proc.stderr


def test_engine_with_only_a_state_path_serves_on_127_0_0_1_9696(tmp_path: Path) -> None:
    """What tools/engine.sh runs: etc/ovirt-ipam.dev.conf, whose state_path (.state)
    is relative to the working directory."""
    conf = Path(__file__).parent.parent / "etc" / "ovirt-ipam.dev.conf"
    script = Path(sys.executable).parent / "ovirt-ipam"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ipam.cli.main"]
    log = open(tmp_path / "engine.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [*cmd, "engine", "--config-file", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "engine.log").read_text()
            try:
                return httpx.get("http://127.0.0.1:9696/", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "the engine on 127.0.0.1:9696", interval=0.1)
        created = httpx.post(
            "http://127.0.0.1:9696/v2.0/networks", json={"network": {"name": "ovirtmgmt"}}
        ).json()["network"]
        listed = httpx.get("http://127.0.0.1:9696/v2.0/networks").json()["networks"]
        assert [n["id"] for n in listed] == [created["id"]]
        assert (tmp_path / ".state" / "ovirt-ipam.sqlite").exists()
        assert (tmp_path / ".state" / "bus").is_dir()
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    assert (
        "Engine serving the API on http://127.0.0.1:9696" in (tmp_path / "engine.log").read_text()
    )

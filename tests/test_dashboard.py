"""The administrator's web page (/dashboard) in a real browser: Debian's chromium,
headless, driven by Selenium, against a real engine process on loopback.

Networks, subnets and ports are made through the REST API (and, for a few hundred
ports, through the store); hosts and DHCP agents heartbeat through the store as the
bus server records them, and the DHCP manager's moves are made the same way (the
engine runs with manage_placement off, so only the test moves anything). Every wait
is for the DOM, with a deadline. Screenshots go to the test's tmp directory and to
/tmp/ovirt-ipam-artefacts/ (outside the checkout).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ipam.db.engine import Database
from ipam.db.schema import dhcp_agents
from ipam.lab.harness import EngineProcess
from ipam.store import Store

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

ARTEFACTS = Path("/tmp/ovirt-ipam-artefacts")
DOWN_TIME = 1.5  # [dhcp] host_down_time: a stopped host shows down quickly
BEAT = 0.3  # seconds between the test's heartbeats of a live host
DEADLINE = 20.0  # for anything the page shows (it polls every 2 s)
TOKEN = "dashboard-s3cret"
ENGINE_CONF = (
    f"[dhcp]\nmanage_placement = false\nready_policy = none\nhost_down_time = {DOWN_TIME}\n"
)


class Heartbeats:
    """Host services and DHCP agents that are alive: each beats every BEAT seconds with
    its bridges and the networks its agent serves, until stopped."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hosts: dict[str, tuple[list[str], list[str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def set(self, host: str, bridges: list[str], serves: list[str]) -> None:
        with self._lock:
            self.hosts[host] = (bridges, serves)
        self._beat(host, bridges, serves)

    def stop_host(self, host: str) -> None:
        with self._lock:
            self.hosts.pop(host, None)

    def _beat(self, host: str, bridges: list[str], serves: list[str]) -> None:
        self.store.host_heartbeat(host, bridges, 1.0)
        status = {"networks": [{"id": n, "dnsmasq": "running", "ports": 0} for n in serves]}
        self.store.agent_heartbeat(host, serves, status, 1.0)

    def _run(self) -> None:
        while not self._stop.wait(BEAT):
            with self._lock:
                beating = dict(self.hosts)
            for host, (bridges, serves) in beating.items():
                self._beat(host, bridges, serves)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class World:
    def __init__(self, engine: EngineProcess, store: Store, tmp: Path) -> None:
        self.engine, self.store, self.tmp = engine, store, tmp
        self.api = httpx.Client(base_url=engine.url, timeout=30)
        self.beats = Heartbeats(store)
        self.nets: dict[str, dict[str, Any]] = {}
        self.ports: list[dict[str, Any]] = []

    def network(self, name: str, cidr: str) -> dict[str, Any]:
        resp = self.api.post("/v2.0/networks", json={"network": {"name": name, "vdsm_name": name}})
        assert resp.status_code == 201, resp.text
        net = resp.json()["network"]
        sub = {"network_id": net["id"], "cidr": cidr}
        assert self.api.post("/v2.0/subnets", json={"subnet": sub}).status_code == 201
        self.nets[name] = net
        return net


def _engine(tmp: Path, extra: str) -> tuple[EngineProcess, Store]:
    engine = EngineProcess(tmp, extra).start().wait_up()
    store = Store(Database(f"sqlite:///{tmp}/state/ovirt-ipam.sqlite"))
    return engine, store


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return tmp_path_factory.mktemp("dashboard-artefacts")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("dashboard-engine")
    engine, store = _engine(tmp, ENGINE_CONF)
    w = World(engine, store, tmp)
    try:
        # Two networks, three ports on the first; h1 serves the first, h2 the second.
        a = w.network("dasha", "10.61.0.0/24")
        b = w.network("dashb", "10.62.0.0/22")  # room for the search test's ports
        for _ in range(3):
            resp = w.api.post("/v2.0/ports", json={"port": {"network_id": a["id"]}})
            assert resp.status_code == 201, resp.text
            w.ports.append(resp.json()["port"])
        w.beats.set("h1", ["dasha", "dashb"], [a["id"]])
        w.beats.set("h2", ["dasha", "dashb"], [b["id"]])
        yield w
    finally:
        w.beats.close()
        w.api.close()
        engine.stop()
        store.db.dispose()
        assert not engine.server_errors(), engine.server_errors()


def open_browser(tmp: Path) -> Any:
    """Headless Debian chromium through chromedriver (also used by tests/test_lab.py)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--window-size=1400,1100",
        f"--user-data-dir={tmp / 'profile'}",
    ):
        opts.add_argument(arg)
    # The driver named explicitly: Selenium Manager never runs, nothing is downloaded.
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "Debian's chromium and chromium-driver are needed (tools/test.sh installs them)"
        )
    driver = open_browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, artefacts: Path, name: str) -> None:
    path = artefacts / f"{name}.png"
    driver.save_screenshot(str(path))
    shutil.copy(path, ARTEFACTS / path.name)


def wait_page(driver: Any, what: str, check: Callable[[], Any]) -> Any:
    """check() until it is truthy, within DEADLINE; on timeout the page's text says why."""
    deadline = time.monotonic() + DEADLINE
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            text = driver.execute_script("return document.body.innerText")
            raise AssertionError(f"page never showed {what} within {DEADLINE} s; it shows:\n{text}")
        time.sleep(0.1)


def serving(driver: Any, net_id: str) -> list[list[str]]:
    """[host, alive] of the serving-host chips of a network's row."""
    return driver.execute_script(
        "return [...document.querySelectorAll(`#networks tr[data-key='${arguments[0]}'] .chip`)]"
        ".map(c => [c.dataset.host, c.dataset.alive])",
        net_id,
    )


def host_state(driver: Any, host: str) -> str | None:
    return driver.execute_script(
        "const r = document.querySelector(`#hosts tr[data-key='${arguments[0]}'] .state`);"
        "return r ? r.textContent : null",
        host,
    )


def port_keys(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#ports tbody tr')].map(r => r.dataset.key)"
    )


def test_page_shows_networks_and_hosts(world: World, browser: Any, artefacts: Path) -> None:
    a, b = world.nets["dasha"], world.nets["dashb"]
    browser.get(world.engine.url + "/dashboard")
    assert wait_page(
        browser, "h1 serving dasha", lambda: serving(browser, a["id"]) == [["h1", "true"]]
    )
    assert wait_page(
        browser, "h2 serving dashb", lambda: serving(browser, b["id"]) == [["h2", "true"]]
    )
    assert wait_page(
        browser,
        "both hosts alive",
        lambda: [host_state(browser, h) for h in ("h1", "h2")] == ["alive", "alive"],
    )
    usage = browser.execute_script(
        "const u = document.querySelector(`#networks tr[data-key='${arguments[0]}'] .usage`);"
        "return [u.dataset.cidr, u.dataset.used, u.dataset.total,"
        " u.querySelector('.fill').style.width]",
        a["id"],
    )
    assert usage[:3] == ["10.61.0.0/24", "3", "253"] and usage[3] == "1.19%"
    text = browser.find_element("id", "networks").text
    assert "dasha" in text and "1 / 1" in text
    assert wait_page(browser, "the ports", lambda: len(port_keys(browser)) == 3)
    assert "2 networks" in browser.find_element("id", "summary").text
    shot(browser, artefacts, "dashboard-loaded")


def test_down_host_and_moved_network_show_without_reload(
    world: World, browser: Any, artefacts: Path
) -> None:
    a, b = world.nets["dasha"], world.nets["dashb"]
    browser.execute_script("window.sameDocument = 'yes'")  # gone if the page reloads
    world.beats.stop_host("h1")
    assert wait_page(browser, "h1 down", lambda: host_state(browser, "h1") == "down")
    assert wait_page(
        browser, "dasha's h1 down", lambda: serving(browser, a["id"]) == [["h1", "false"]]
    )
    assert host_state(browser, "h2") == "alive"
    shot(browser, artefacts, "dashboard-host-down")

    # What the DHCP manager does: release the dead host's network, place it on a live
    # one (whose agent then heartbeats it among its served networks).
    world.store.release_network("h1", a["id"], by_agent=False)
    world.beats.set("h2", ["dasha", "dashb"], [b["id"], a["id"]])
    assert wait_page(
        browser, "h2 serving dasha", lambda: serving(browser, a["id"]) == [["h2", "true"]]
    )
    assert serving(browser, b["id"]) == [["h2", "true"]]
    assert browser.execute_script("return window.sameDocument") == "yes"
    shot(browser, artefacts, "dashboard-failed-over")


def test_search_finds_one_port_by_mac_among_many(
    world: World, browser: Any, artefacts: Path
) -> None:
    b = world.nets["dashb"]
    many = [world.store.create_port({"network_id": b["id"]}) for _ in range(300)]
    wanted = many[137]
    assert wait_page(browser, "a full first page of ports", lambda: len(port_keys(browser)) == 50)
    total = browser.find_element("id", "ports-total").text
    assert total == "(303)", total

    search = browser.find_element("id", "ports-search")
    search.send_keys(wanted["mac_address"].upper())  # MACs match whatever their case
    assert wait_page(browser, "exactly the port", lambda: port_keys(browser) == [wanted["id"]])
    assert browser.find_element("id", "ports-total").text == "(1)"
    row = browser.find_element("css selector", "#ports tbody tr").text
    assert wanted["mac_address"] in row and wanted["fixed_ips"][0]["ip_address"] in row
    shot(browser, artefacts, "dashboard-port-search")

    # By address too (exactly), and the search is the server's: one row comes back.
    ip = wanted["fixed_ips"][0]["ip_address"]
    found = world.api.get("/dashboard/api/ports", params={"q": ip}).json()
    assert found["total"] == 1 and [p["id"] for p in found["ports"]] == [wanted["id"]]
    search.clear()
    search.send_keys(" ")  # clear() fires no input event
    assert wait_page(browser, "the ports again", lambda: len(port_keys(browser)) == 50)


def test_ports_show_their_lease_and_reason(world: World, browser: Any, artefacts: Path) -> None:
    """Each port's lease (state, address, the hostname its client sent), the host
    that holds it and the reason when it is not right."""
    a = world.nets["dasha"]
    bound, declined = world.ports[0], world.ports[1]
    now = time.time()
    facts = [
        {
            "mac_address": p["mac_address"],
            "ip_address": p["fixed_ips"][0]["ip_address"],
            "state": state,
            "seen_at": now,
            "expires_at": now + 3600 if state == "bound" else None,
            "client_hostname": f"guest-{state}",
        }
        for p, state in ((bound, "bound"), (declined, "declined"))
    ]
    world.store.record_leases("h2", a["id"], facts, False)
    shown = world.api.get(f"/v2.0/ports/{declined['id']}").json()["port"]

    def lease_cells() -> list[list[str]]:
        """[port id, lease, lease host, reason] of each row shown."""
        return browser.execute_script(
            "return [...document.querySelectorAll('#ports tbody tr')].map(r =>"
            " [r.dataset.key, r.cells[5].innerText, r.cells[6].innerText, r.cells[8].innerText])"
        )

    search = browser.find_element("id", "ports-search")
    for port, state in ((bound, "bound"), (declined, "declined")):
        search.clear()
        search.send_keys(port["mac_address"])
        got = wait_page(
            browser,
            f"the {state} lease",
            lambda port=port, state=state: [
                r for r in lease_cells() if r[0] == port["id"] and r[1].startswith(state)
            ],
        )
        reason = world.api.get(f"/v2.0/ports/{port['id']}").json()["port"]["dhcp_status_reason"]
        assert got[0][2] == "h2" and got[0][3] == (reason or "—"), got
        assert f"client says: guest-{state}" in got[0][1]  # what the guest calls itself
    assert "declined" in shown["dhcp_status_reason"]
    shot(browser, artefacts, "dashboard-leases")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=ten",
        "offset=-1",
        "offset=99999999999",
        "q=" + "x" * 101,
        "q=a%00b",
        "q=a%0Ab",
        "network_id=../../etc",
        "status=active;drop",
        "limt=5",
    ],
)
def test_bad_parameters_get_neutrons_400(world: World, query: str) -> None:
    resp = world.api.get(f"/dashboard/api/ports?{query}")
    assert resp.status_code == 400, resp.text
    assert set(resp.json()["NeutronError"]) == {"type", "message", "detail"}


def test_lists_are_paged(world: World) -> None:
    for path, key in (("networks", "networks"), ("hosts", "hosts"), ("ports", "ports")):
        body = world.api.get(f"/dashboard/api/{path}", params={"limit": 1}).json()
        assert len(body[key]) == 1 and body["total"] >= 2, body
        assert world.api.get(f"/dashboard/api/{path}?limit=500").status_code == 400
    assert world.api.get("/dashboard/static/dashboard.py").status_code == 404


def test_json_on_both_backends(store: Store) -> None:
    """The page's JSON in-process, on SQLite and PostgreSQL (no browser): usage per
    subnet, serving hosts and liveness, search by MAC, address (v4 and v6), id and
    contained text, and paging."""
    from fastapi.testclient import TestClient

    from ipam.api.app import create_app

    api = TestClient(create_app(store))
    net = api.post("/v2.0/networks", json={"network": {"name": "Blue_%", "vdsm_name": "blue"}})
    net_id = net.json()["network"]["id"]
    for sub in ({"cidr": "10.7.0.0/28"}, {"cidr": "fd07::/64", "ip_version": 6}):
        assert api.post("/v2.0/subnets", json={"subnet": {"network_id": net_id, **sub}}).is_success
    ports = [
        api.post("/v2.0/ports", json={"port": {"network_id": net_id, "name": f"vm-{i}"}}).json()[
            "port"
        ]
        for i in range(5)
    ]
    store.host_heartbeat("alive1", ["blue"], 1.0)
    store.agent_heartbeat(
        "alive1", [net_id], {"networks": [{"id": net_id, "dnsmasq": "running"}]}, 1.0
    )
    store.agent_heartbeat("gone1", [net_id], {"networks": []}, 1.0)
    with store.db.engine.begin() as conn:  # gone1's last heartbeat, long ago
        conn.execute(
            sa.update(dhcp_agents).where(dhcp_agents.c.host == "gone1").values(last_seen=1.0)
        )

    (shown,) = api.get("/dashboard/api/networks", params={"q": "blue_%"}).json()["networks"]
    assert [(s["host"], s["alive"]) for s in shown["serving"]] == [
        ("alive1", True),
        ("gone1", False),
    ]
    assert shown["serving_alive"] == 1 and shown["ha_count"] == 1 and shown["ports"] == 5
    v4, v6 = shown["subnets"]
    assert (v4["total"], v4["used"], v4["free"]) == (13, 5, 8)
    assert v6["total"] > 2**63 and v6["used"] == 5
    assert api.get("/dashboard/api/networks", params={"q": "blue_x"}).json()["total"] == 0
    hosts = api.get("/dashboard/api/hosts").json()["hosts"]
    assert [(h["name"], h["alive"], h["serving_count"]) for h in hosts] == [
        ("alive1", True, 1),
        ("gone1", False, 1),
    ]

    def found(q: str, **params: Any) -> list[str]:
        body = api.get("/dashboard/api/ports", params={"q": q, **params}).json()
        return [p["id"] for p in body["ports"]]

    target = ports[3]
    v4_ip, v6_ip = (f["ip_address"] for f in target["fixed_ips"])
    for q in (target["mac_address"].upper(), v4_ip, v6_ip, target["id"].upper(), "VM-3"):
        assert found(q) == [target["id"]], q
    assert found("vm-", limit=2) == [ports[4]["id"], ports[3]["id"]]  # newest first
    assert found("vm-", limit=2, offset=4) == [ports[0]["id"]]
    assert found("10.7.0.200") == [] and found("fd08::5") == [] and found("%") == []
    assert len(found("", network_id=net_id, status="DOWN")) == 5


def test_token_auth(
    tmp_path_factory: pytest.TempPathFactory, browser: Any, artefacts: Path
) -> None:
    tmp = tmp_path_factory.mktemp("dashboard-token-engine")
    engine, store = _engine(tmp, f"auth_strategy = token\nauth_token = {TOKEN}\n{ENGINE_CONF}")
    try:
        api = httpx.Client(base_url=engine.url, timeout=30)
        net = api.post(
            "/v2.0/networks",
            json={"network": {"name": "guarded", "vdsm_name": "guarded"}},
            headers={"X-Auth-Token": TOKEN},
        ).json()["network"]
        for path in ("summary", "networks", "hosts", "ports"):
            for headers in ({}, {"X-Auth-Token": "wrong"}):
                resp = api.get(f"/dashboard/api/{path}", headers=headers)
                assert resp.status_code == 401, (path, resp.text)
                assert resp.json()["NeutronError"]["type"] == "NotAuthenticated"
            ok = api.get(f"/dashboard/api/{path}", headers={"X-Auth-Token": TOKEN})
            assert ok.status_code == 200, ok.text
        page = api.get("/dashboard")  # the page holds no data: no token needed
        assert page.status_code == 200 and "guarded" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        browser.get(engine.url + "/dashboard")
        assert wait_page(
            browser,
            "the token prompt",
            lambda: browser.execute_script(
                "return document.body.dataset.auth === 'needed' && "
                "!document.getElementById('auth-needed').hidden"
            ),
        )
        shot(browser, artefacts, "dashboard-token-needed")
        browser.find_element("id", "token").send_keys(TOKEN)
        browser.find_element("id", "token-save").click()
        assert wait_page(
            browser,
            "the guarded network",
            lambda: browser.execute_script(
                "return !!document.querySelector(`#networks tr[data-key='${arguments[0]}']`)",
                net["id"],
            ),
        )
        assert browser.execute_script("return document.body.dataset.auth") == "ok"
        assert TOKEN not in browser.current_url
        assert browser.find_element("id", "token").get_attribute("value") == ""
        shot(browser, artefacts, "dashboard-token-entered")
        browser.execute_script("sessionStorage.clear()")
        api.close()
    finally:
        engine.stop()
        store.db.dispose()

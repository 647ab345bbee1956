"""The engine's Prometheus metrics (/metrics): scraped numbers agree with the API
(addresses, ports by status, DHCP servers wanted and serving, hosts), the
port-create histogram counts every create, and the API's authentication applies."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ipam.api.app import create_app
from ipam.api.auth import StaticTokenAuth
from ipam.store import Store


def scrape(client: TestClient, **headers: str) -> dict[str, list[tuple[dict, float]]]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: list[tuple[dict, float]], **labels: str) -> float:
    found = [v for got, v in samples if all(got.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_scraped_numbers_agree_with_the_api(store: Store) -> None:
    api = TestClient(create_app(store))
    net = api.post("/v2.0/networks", json={"network": {"name": "m", "vdsm_name": "m1"}})
    net_id = net.json()["network"]["id"]
    v4 = {"network_id": net_id, "cidr": "10.9.0.0/24"}
    v6 = {"network_id": net_id, "cidr": "fd09::/64", "ip_version": 6}
    sub4 = api.post("/v2.0/subnets", json={"subnet": v4}).json()["subnet"]
    sub6 = api.post("/v2.0/subnets", json={"subnet": v6}).json()["subnet"]
    ports = [
        api.post("/v2.0/ports", json={"port": {"network_id": net_id}}).json()["port"]
        for _ in range(3)
    ]
    assert api.delete(f"/v2.0/ports/{ports[0]['id']}").status_code == 204
    store.host_heartbeat("h1", ["m1"], time.time())
    store.agent_heartbeat(
        "h1",
        [net_id],
        {"networks": [{"id": net_id, "dnsmasq": "running", "ports": 2, "ack_lag_s": 0.25}]},
        1.0,
    )
    store.agent_heartbeat("h2", [], {"networks": []}, 1.0)

    got = scrape(api)
    avail = api.get(f"/v2.0/network-ip-availabilities/{net_id}").json()["network_ip_availability"]
    for sub in avail["subnet_ip_availability"]:
        addresses = got["ovirt_ipam_subnet_addresses"]
        ids = {"network_id": net_id, "subnet_id": sub["subnet_id"]}
        assert value(addresses, **ids, state="used") == sub["used_ips"] == 2
        # Prometheus values are float64: a /64's count as exactly as a float holds it.
        assert value(addresses, **ids, state="total") == float(sub["total_ips"])
        assert value(addresses, **ids, state="free") == float(sub["total_ips"] - sub["used_ips"])
    assert {s["subnet_id"] for s in avail["subnet_ip_availability"]} == {sub4["id"], sub6["id"]}
    listed = api.get("/v2.0/ports", params={"network_id": net_id}).json()["ports"]
    statuses = {p["status"] for p in listed}
    for status in statuses:
        count = sum(p["status"] == status for p in listed)
        assert value(got["ovirt_ipam_ports"], network_id=net_id, status=status) == count
    servers = got["ovirt_ipam_network_dhcp_servers"]
    assert value(servers, network_id=net_id, kind="wanted") == 1  # the HA count
    assert value(servers, network_id=net_id, kind="serving") == 1
    assert value(got["ovirt_ipam_dhcp_agent_networks"], host="h1") == 1
    assert value(got["ovirt_ipam_dhcp_agent_up"], host="h1") == 1
    assert value(got["ovirt_ipam_dhcp_agent_ports"], host="h1") == 2  # from its heartbeat
    assert value(got["ovirt_ipam_dhcp_agent_ack_lag_seconds"], host="h1") == 0.25
    assert value(got["ovirt_ipam_dhcp_agent_ports"], host="h2") == 0
    assert not [s for s in got["ovirt_ipam_dhcp_agent_ack_lag_seconds"] if s[0]["host"] == "h2"]
    assert value(got["ovirt_ipam_host_up"], host="h1") == 1
    # Every create observed once; the delete and the scrape not at all.
    assert value(got["ovirt_ipam_port_create_seconds_count"]) == 3
    api.post("/v2.0/ports", json={"port": {"network_id": net_id}})
    assert value(scrape(api)["ovirt_ipam_port_create_seconds_count"]) == 4


def test_metrics_need_the_apis_token(sqlite_store: Store) -> None:
    api = TestClient(create_app(sqlite_store, StaticTokenAuth("tok", "admin", "pw")))
    resp = api.get("/metrics")
    assert resp.status_code == 401 and "NeutronError" in resp.json()
    assert (
        "ovirt_ipam_port_create_seconds"
        in api.get("/metrics", headers={"X-Auth-Token": "tok"}).text
    )


@pytest.mark.parametrize("path", ["/metrics?format=../../etc", "/metrics/x"])
def test_metrics_take_no_parameters_or_subpaths(sqlite_store: Store, path: str) -> None:
    api = TestClient(create_app(sqlite_store))
    resp = api.get(path)
    assert resp.status_code in (200, 404)
    if resp.status_code == 200:  # a query is ignored, as by Neutron's list calls
        assert "../../etc" not in resp.text

"""The store's side of lease facts, on SQLite and PostgreSQL: facts join ports by
(network, MAC) only, a host's rebuild expires what its dnsmasq no longer holds,
and the reasons a port's DHCP is not right."""

from __future__ import annotations

import time

from ipam.store import Store
from ipam.store import leases as L


def fact(mac: str, ip: str | None, state: str, seen: float, **kw: object) -> dict:
    return {"mac_address": mac, "ip_address": ip, "state": state, "seen_at": seen, **kw}


def test_facts_join_ports_by_mac_and_rebuilds_expire_what_is_gone(store: Store) -> None:
    net = store.create_network({"name": "leases"})
    store.create_subnet({"network_id": net["id"], "cidr": "10.8.0.0/24"})
    a = store.create_port({"network_id": net["id"], "mac_address": "02:00:00:00:08:01"})
    b = store.create_port({"network_id": net["id"], "mac_address": "02:00:00:00:08:02"})
    ip_a, ip_b = a["fixed_ips"][0]["ip_address"], b["fixed_ips"][0]["ip_address"]
    now = time.time()
    store.record_leases(
        "h1",
        net["id"],
        [
            fact(a["mac_address"], ip_a, "bound", now, expires_at=now + 60),
            # A MAC with no port, answering for b's address: never attached to b.
            fact("02:00:00:00:08:99", ip_b, "declined", now),
        ],
        False,
    )
    rows = {r["mac_address"]: r for r in store.list_leases(net["id"])}
    assert rows[a["mac_address"]]["port_id"] == a["id"]
    assert rows[a["mac_address"]]["state"] == "bound"
    assert rows["02:00:00:00:08:99"]["port_id"] is None
    assert [r["mac_address"] for r in store.list_leases(net["id"], "declined")] == [
        "02:00:00:00:08:99"
    ]
    key_a, key_b = (net["id"], a["mac_address"]), (net["id"], b["mac_address"])
    with store.db.read() as c:
        # Past its end, the binding shows as expired, and says so.
        late = now + 120
        row = L.for_ports(c, [key_a], late)[key_a]
        assert L.view(row, late)["state"] == "expired"
        assert L.status_reason(a, row, late) == L.REASONS["expired"]
    # The same client on a second host, later, does not hide the live binding.
    store.record_leases("h2", net["id"], [fact(a["mac_address"], ip_a, "offered", now + 1)], False)
    with store.db.read() as c:
        current = L.for_ports(c, [key_a, key_b], now)
        assert current[key_a].host == "h1"
        assert key_b not in current
        assert L.status_reason(a, current[key_a], now) is None
        assert L.status_reason(b, None, now) == L.REASONS["none"]
    # h1's dnsmasq restarts with an empty lease file: a lease still running stays bound
    # (its client holds it, and any server of the network renews it) ...
    store.record_leases("h1", net["id"], [], True)
    with store.db.read() as c:
        assert L.counts(c, now) == {
            (net["id"], "bound"): 1,
            (net["id"], "declined"): 1,
            (net["id"], "offered"): 1,
        }
    # ... one that ran out is expired.
    store.db.write(lambda c: c.exec_driver_sql("UPDATE dhcp_leases SET expires_at = 1"))
    store.record_leases("h1", net["id"], [], True)
    states = {(r["host"], r["state"]) for r in store.list_leases(net["id"])}
    assert ("h1", "expired") in states and ("h2", "offered") in states


def test_reasons_for_a_wrong_lease(store: Store) -> None:
    net = store.create_network({"name": "reasons"})
    store.create_subnet({"network_id": net["id"], "cidr": "10.8.1.0/24"})
    port = store.create_port({"network_id": net["id"], "mac_address": "02:00:00:00:08:11"})
    now = time.time()
    cases = [
        (fact(port["mac_address"], "10.8.1.250", "bound", now), L.REASONS["other"]),
        (fact(port["mac_address"], "10.8.1.5", "declined", now), L.REASONS["declined"]),
        (fact(port["mac_address"], None, "released", now), L.REASONS["released"]),
        (
            fact(port["mac_address"], "10.8.1.5", "nak", now, reason="wrong address"),
            "(wrong address)",
        ),
    ]
    for f, expected in cases:
        store.record_leases("h1", net["id"], [f], False)
        with store.db.read() as c:
            row = L.for_ports(c, [(net["id"], port["mac_address"])], now)[
                (net["id"], port["mac_address"])
            ]
            reason = L.status_reason(port, row, now)
        assert reason is not None and expected.split("{")[0] in reason, (f, reason)
    # Facts for a network that is gone are dropped, not an error.
    assert (
        store.record_leases("h1", "00000000-0000-0000-0000-000000000000", cases[0][:1], False) == 0
    )


def test_what_a_client_said_of_itself_is_kept_until_it_says_otherwise(store: Store) -> None:
    """A RELEASE or a rebuild does not carry the name a client sent: the last one
    said stays; a new one replaces it. The port and GET /dhcp-leases show both."""
    net = store.create_network({"name": "client-says"})
    store.create_subnet({"network_id": net["id"], "cidr": "10.8.2.0/24"})
    port = store.create_port({"network_id": net["id"], "mac_address": "02:00:00:00:08:21"})
    mac, ip = port["mac_address"], port["fixed_ips"][0]["ip_address"]
    clid = "01:" + mac
    now = time.time()

    def said() -> tuple[object, object]:
        (row,) = store.list_leases(net["id"])
        return row["client_id"], row["client_hostname"]

    store.record_leases(
        "h1",
        net["id"],
        [fact(mac, ip, "bound", now, client_id=clid, client_hostname="vm-21")],
        False,
    )
    assert said() == (clid, "vm-21")
    assert store.get_port(port["id"])["dhcp_lease"]["client_hostname"] == "vm-21"
    store.record_leases("h1", net["id"], [fact(mac, ip, "released", now + 1)], False)
    assert said() == (clid, "vm-21")
    store.record_leases(
        "h1", net["id"], [fact(mac, ip, "bound", now + 2, client_hostname="renamed")], False
    )
    assert said() == (clid, "renamed")

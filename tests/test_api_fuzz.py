"""The REST API fuzzed from its own OpenAPI document with schemathesis (issue 7):
whatever a generated request holds, the answer is never a 5xx and the app never
crashes. Runs in-process against the real app on a real SQLite store holding a
network, a subnet and a port, so that some generated requests meet real objects."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from ipam.api.app import create_app
from tests.conftest import make_store
from tests.faultlab import record

_DIR = Path(tempfile.mkdtemp(prefix="ovirt-ipam-fuzz-"))
STORE = make_store(f"sqlite:///{_DIR}/ipam.sqlite")
_net = STORE.create_network({"name": "fuzznet", "ha_count": 1})
STORE.create_subnet({"network_id": _net["id"], "cidr": "10.77.0.0/24"})
STORE.create_port({"network_id": _net["id"], "device_id": "vm-1"})

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(STORE))
STATUSES: Counter[int] = Counter()


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_server_error(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call()
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )


def test_zz_fuzzing_record() -> None:
    """Runs after the fuzzing (alphabetical order within the module): counts it."""
    total = sum(STATUSES.values())
    assert total > 100, STATUSES  # the fuzzing did run
    record(
        "input",
        "REST API fuzzed from its OpenAPI document (schemathesis)",
        cases=total,
        server_errors=sum(n for code, n in STATUSES.items() if code >= 500),
        statuses=dict(sorted(STATUSES.items())),
    )

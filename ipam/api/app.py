"""The engine's REST application: Neutron v2.0 subset plus the token endpoint."""

from __future__ import annotations

from fastapi import FastAPI, Request
from oslo_config import cfg

from ipam.api import agents, discovery, errors, identity, leases
from ipam.api.auth import AuthPlugin, NoAuth, StaticTokenAuth
from ipam.api.dashboard import router as dashboard_router
from ipam.api.metrics import Metrics
from ipam.api.metrics import router as metrics_router
from ipam.api.middleware import BodyLimitAndAccessLog, ClientPaths
from ipam.api.models import NetworkBody, PortBody, SubnetBody
from ipam.api.resources import Crud, crud_router
from ipam.dhcp.readiness import Readiness
from ipam.store import Store

DESCRIPTION = (
    "IP address management for oVirt VM networks: the Neutron v2.0 subset that oVirt "
    "engine's external network provider client and openstacksdk use. Errors come as "
    '{"NeutronError": {"type", "message", "detail"}}.'
)


def auth_plugin(conf: cfg.ConfigOpts) -> AuthPlugin:
    if conf.api.auth_strategy == "token":
        return StaticTokenAuth(conf.api.auth_token, conf.api.auth_username, conf.api.auth_password)
    return NoAuth()


#: A port update changing one of these returns per the readiness policy: what its DHCP
#: servers give out changed, and its status is DOWN until one has the new entry.
SERVED = {"mac_address", "fixed_ips", "dns_name", "extra_dhcp_opts"}


def _port_ready(request: Request, port: dict, changed: set[str] | None) -> dict:
    """A created port, or one whose served attributes changed, returns per the
    readiness policy."""
    readiness: Readiness | None = request.app.state.readiness
    if readiness is None or (changed is not None and not SERVED & changed):
        return port
    return readiness.wait(port)  # DESIGN.md flow 4


def create_app(
    store: Store,
    auth: AuthPlugin | None = None,
    max_body: int = 1024 * 1024,
    public_url: str | None = None,
    readiness: Readiness | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    app = FastAPI(
        title="ovirt-ipam",
        version="2.0",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.store = store
    app.state.readiness = readiness  # None: ports are returned at once, as stored
    app.state.host_down_time = readiness.host_down_time if readiness else 6.0
    app.state.auth = auth or NoAuth()
    app.state.public_url = public_url
    app.state.metrics = metrics or Metrics(store, app.state.host_down_time)
    errors.install(app)

    def store_of(request: Request) -> Store:
        return request.app.state.store

    app.include_router(discovery.router)
    app.include_router(agents.router)
    app.include_router(identity.router)
    app.include_router(metrics_router)
    app.include_router(leases.router)
    app.include_router(dashboard_router)
    networks = Crud(
        Store.list_networks,
        Store.get_network,
        Store.create_network,
        Store.update_network,
        Store.delete_network,
    )
    subnets = Crud(
        Store.list_subnets,
        Store.get_subnet,
        Store.create_subnet,
        Store.update_subnet,
        Store.delete_subnet,
    )
    ports = Crud(
        Store.list_ports, Store.get_port, Store.create_port, Store.update_port, Store.delete_port
    )
    app.include_router(crud_router("networks", "network", NetworkBody, store_of, networks))
    app.include_router(crud_router("subnets", "subnet", SubnetBody, store_of, subnets))
    app.include_router(
        crud_router(
            "ports",
            "port",
            PortBody,
            store_of,
            ports,
            {"fixed_ips", "dhcp_lease_state"},
            after_write=_port_ready,
            full_list=lambda request: store_of(request).port_list_body(),
        )
    )
    app.add_middleware(ClientPaths)  # inside the access log: it logs the path as sent
    app.add_middleware(BodyLimitAndAccessLog, max_body=max_body, metrics=app.state.metrics)
    return app

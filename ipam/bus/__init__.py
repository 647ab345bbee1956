"""The bus between the engine and the hosts: the message contracts, the kombu bus,
the outbox that makes a send survive a restart, and the host RPC call. The hosts
import this package and nothing else of ipam (tests/test_layout.py checks it)."""

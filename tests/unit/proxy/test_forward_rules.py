"""The rules every header filter shares: whose forwarding headers are believed."""

from __future__ import annotations

from bff.proxy.forward_rules import ForwardRules
from tests.unit.proxy.headers_env import RULES


def test_trust_is_decided_by_the_peer_address() -> None:
    assert RULES.trusts("10.2.3.4")
    assert not RULES.trusts("192.0.2.7")
    assert not RULES.trusts(None)
    assert not RULES.trusts("not-an-ip")
    assert not ForwardRules.create(["c"], []).trusts("10.2.3.4")

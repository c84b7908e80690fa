"""The Grafana dashboard and the PrometheusRule: every expression parses as PromQL (a
real parser) and uses only bff's metric names and their labels, as the metrics contract
of issue 13 lists them (the code that exports them adapts to this list)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest

from tests.deploy.common import DEPLOY, load_yaml_docs

# name -> (type, labels): the metrics contract.
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "bff_requests_total": ("counter", frozenset({"route", "status_class"})),
    "bff_request_duration_seconds": ("histogram", frozenset({"route"})),
    "bff_upstream_duration_seconds": ("histogram", frozenset({"route"})),
    "bff_refresh_total": ("counter", frozenset({"outcome"})),
    "bff_refresh_lock_wait_seconds": ("histogram", frozenset()),
    "bff_refresh_coalesced_total": ("counter", frozenset()),
    "bff_store_errors_total": ("counter", frozenset({"operation"})),
    "bff_store_duration_seconds": ("histogram", frozenset({"operation"})),
    "bff_events_total": ("counter", frozenset({"event", "outcome"})),
    "bff_inflight_requests": ("gauge", frozenset()),
    "bff_live_connections": ("gauge", frozenset()),
}
# Labels Prometheus adds to every series from the scrape target.
TARGET_LABELS = frozenset({"namespace", "pod", "job", "instance", "service", "container"})
# Grafana's variables, replaced by values of the same kind before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*"}

DASHBOARD = DEPLOY / "grafana" / "bff-dashboard.json"
RULES = DEPLOY / "monitoring" / "prometheusrule.yaml"


def _series(name: str) -> tuple[str, frozenset[str]]:
    """The metric a series name belongs to, and the labels it may carry."""
    if name in METRICS and METRICS[name][0] != "histogram":
        return name, METRICS[name][1]
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base, ("",))[0] == "histogram":
            extra = {"le"} if suffix == "_bucket" else set()
            return base, METRICS[base][1] | extra
    raise AssertionError(f"{name} is not a bff metric (or not a series of one)")


def _check(expr: str) -> set[str]:
    """Parse; every selector and every `by (...)` uses known metrics and labels."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    tree = promql_parser.parse(expr)
    used: set[str] = set()
    allowed: set[str] = set(TARGET_LABELS)

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            base, labels = _series(node.name)
            used.add(base)
            allowed.update(labels)
            for matcher in node.matchers.matchers:
                assert matcher.name in labels | TARGET_LABELS, (node.name, matcher.name)
        return True

    promql_parser.walk(tree, visit)
    assert used, f"no bff metric in {expr!r}"

    def grouping(node: Any) -> bool:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            for label in node.modifier.labels:
                assert label in allowed, (expr, label)
        return True

    promql_parser.walk(tree, grouping)
    return used


def _dashboard_exprs() -> Iterator[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def _rules() -> list[dict[str, Any]]:
    (rule,) = load_yaml_docs(RULES)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_the_contract_list_is_well_formed() -> None:
    for name, (kind, labels) in METRICS.items():
        assert name.startswith("bff_")
        assert kind != "counter" or name.endswith("_total")
        assert kind != "histogram" or name.endswith("_seconds")
        # No label may carry a user, a session or a token.
        assert not labels & {"sub", "session", "user", "token", "sid", "client_ip"}


def test_the_dashboard_uses_only_known_metrics_and_covers_them_all() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "bff"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for expr in _dashboard_exprs():
        used |= _check(expr)
    assert used == set(METRICS)  # every metric an operator alerts on is on the dashboard
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_the_alerts_cover_refresh_failures_store_errors_and_5xx() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    used: dict[str, set[str]] = {}
    for rule in rules:
        used[rule["alert"]] = _check(rule["expr"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert promql_parser.parse_duration(rule["for"])  # a valid duration
    covered = set().union(*used.values())
    assert {"bff_refresh_total", "bff_store_errors_total", "bff_requests_total"} <= covered
    five_xx = [r for r in rules if 'status_class="5xx"' in r["expr"]]
    assert five_xx, "an alert on the 5xx rate"


@pytest.mark.parametrize(
    "expr",
    [
        "rate(bff_request_total[5m])",  # a typo of a metric name
        'sum(rate(bff_refresh_total{result="ok"}[5m]))',  # a label the metric lacks
        "sum by (user) (rate(bff_requests_total[5m]))",  # grouping by an unknown label
        "bff_inflight_requests_bucket",  # a histogram suffix on a gauge
        "sum(rate(bff_requests_total[5m])",  # not PromQL
    ],
)
def test_the_checker_refuses(expr: str) -> None:
    with pytest.raises((AssertionError, ValueError)):
        _check(expr)

"""Writes docs/grafana-dashboard.json: python bench/grafana_dashboard.py

One place for the dashboard's queries, so that they are reviewed as code; the JSON is
what Grafana imports (Dashboards -> New -> Import), with a Prometheus data source.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GROUP = '{group=~"$group"}'

# (title, unit, [(query, legend)], width, height)
PANELS = [
    (
        "Decisions per second by outcome",
        "reqps",
        [
            (
                f"sum by (outcome) (rate(ratelimit_decisions_total{GROUP}[$__rate_interval]))",
                "{{outcome}}",
            )
        ],
        12,
        8,
    ),
    (
        "Denials per second by endpoint group",
        "reqps",
        [
            (
                'sum by (group) (rate(ratelimit_decisions_total{outcome="denied", group=~"$group"}'
                "[$__rate_interval]))",
                "{{group}}",
            )
        ],
        12,
        8,
    ),
    (
        "Denied share by endpoint group",
        "percentunit",
        [
            (
                'sum by (group) (rate(ratelimit_decisions_total{outcome="denied", group=~"$group"}'
                "[$__rate_interval])) / sum by (group) (rate(ratelimit_decisions_total"
                '{outcome=~"allowed|denied", group=~"$group"}[$__rate_interval]))',
                "{{group}}",
            )
        ],
        12,
        8,
    ),
    (
        "Near the limit (under 10 % left) and shadow denials, by limit",
        "reqps",
        [
            (
                f"sum by (limit) (rate(ratelimit_near_limit_total{GROUP}[$__rate_interval]))",
                "near: {{limit}}",
            ),
            (
                'sum by (limit) (rate(ratelimit_decisions_total{outcome="shadow_denied", '
                'group=~"$group"}[$__rate_interval]))',
                "shadow: {{limit}}",
            ),
        ],
        12,
        8,
    ),
    (
        "Credential bans created and lifted",
        "short",
        [
            (
                "sum by (rule, kind) (increase(ratelimit_bans_created_total[$__range]))",
                "created {{rule}} ({{kind}})",
            ),
            (
                "sum by (rule, kind) (increase(ratelimit_bans_lifted_total[$__range]))",
                "lifted {{rule}} ({{kind}})",
            ),
        ],
        12,
        8,
    ),
    (
        "Watched credential failures per second, by rule",
        "reqps",
        [("sum by (rule) (rate(ratelimit_ban_failures_total[$__rate_interval]))", "{{rule}}")],
        12,
        8,
    ),
    (
        "Counter-store check latency",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le) (rate(ratelimit_store_call_seconds_bucket"
                '{operation="check"}[$__rate_interval])))',
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        12,
        8,
    ),
    (
        "Counter-store failures by kind, and requests decided without it",
        "reqps",
        [
            (
                "sum by (kind) (rate(ratelimit_store_failures_total[$__rate_interval]))",
                "failed: {{kind}}",
            ),
            (
                "sum by (failure_mode) (rate(ratelimit_unavailable_total[$__rate_interval]))",
                "unchecked (fail-{{failure_mode}})",
            ),
        ],
        12,
        8,
    ),
    (
        "Circuit breaker open (any live worker)",
        "short",
        [("max(ratelimit_store_breaker_open)", "open")],
        8,
        6,
    ),
    (
        "Denials answered from memory (no Redis call)",
        "reqps",
        [("sum(rate(ratelimit_deny_record_hits_total[$__rate_interval]))", "deny-record hits")],
        8,
        6,
    ),
    (
        "Policy snapshot: age of the stalest worker, revision",
        "s",
        [
            ("time() - min(ratelimit_policy_snapshot_refreshed_timestamp_seconds)", "age"),
            ("min(ratelimit_policy_revision)", "revision"),
        ],
        8,
        6,
    ),
]


def panel(index, x, y, title, unit, queries, width, height):
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": width, "h": height},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def dashboard():
    panels, x, y, row_height = [], 0, 0, 0
    for index, (title, unit, queries, width, height) in enumerate(PANELS):
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(panel(index, x, y, title, unit, queries, width, height))
        x, row_height = x + width, max(row_height, height)
    return {
        "title": "ratelimit_app",
        "uid": "ratelimit-app",
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "tags": ["ratelimit_app", "django"],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "group",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": "label_values(ratelimit_decisions_total, group)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=1) + "\n")
    print(f"Wrote {OUT}")

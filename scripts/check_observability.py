"""Offline checks of deploy/observability: every query asks for metrics EventHub exports.

Run by scripts/check_deploy.sh after promtool has checked the Prometheus configurations
and run the alert tests. This script checks, against `scripts.exported_metrics`:
  - the alert rules, the Grafana dashboard and the Prometheus adapter's queries name only
    exported series, and match or group by only labels those series have;
  - the dashboard's shape (data source variable on every panel and query, unique ids,
    panels inside the 24-column grid, repeated rows on existing variables);
  - every alert has a promtool test where it fires and one where it stays silent;
  - every HPA's external metric is one the adapter serves;
and writes the dashboard's and the adapter's queries as recording rules, so that
`promtool check rules` parses them too (`--queries-out`).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from scripts.exported_metrics import series

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy/observability"
DASHBOARDS = OBSERVABILITY / "grafana/dashboards"
ADAPTER_CONFIG = ROOT / "deploy/k8s/components/history-autoscaling/prometheus-adapter.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Grafana's built-in variables, and what stands for each in a query promtool parses.
GRAFANA_RANGES = ("$__rate_interval", "$__interval", "$__range")
# PromQL words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
KEYWORDS |= {"and", "or", "unless", "offset", "inf", "nan"}
# Aggregations may take `by (...)` before their argument, so no "(" follows them.
KEYWORDS |= {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
KEYWORDS |= {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`'  # strings
    r"|\{[^}]*\}|\[[^\]]*\]"  # label matchers, ranges
    r"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*"  # numbers and durations
    r"|[A-Za-z_:][A-Za-z0-9_:]*|\S"
)
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:\\.|[^"\\])*"\s*,?')

problems: list[str] = []


def check(ok: bool, where: str, what: str) -> None:
    if not ok:
        problems.append(f"{where}: {what}")


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as plain PromQL: Grafana's variables replaced by values."""
    for name in GRAFANA_RANGES:
        expr = expr.replace(name, "5m")
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def check_query(expr: str, where: str, exported: dict[str, set[str]]) -> None:
    """Every metric the PromQL expression names is exported, and every label it matches
    or groups by is one of that metric's (for grouping: of any metric it names)."""
    tokens = TOKEN.findall(expr)
    names: list[str] = []
    selectors: list[tuple[str, str]] = []  # (metric or "", matchers)
    grouped: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPING and following == "(":
            end = tokens.index(")", i)
            grouped |= {t for t in tokens[i + 2 : end] if t != ","}
            i = end + 1
            continue
        if re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token) and token.lower() not in KEYWORDS:
            if following != "(":
                names.append(token)
                if following.startswith("{"):
                    selectors.append((token, following))
        elif token.startswith("{"):
            previous = tokens[i - 1] if i else ""
            if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", previous):
                named = re.search(r'__name__\s*=\s*"([^"]+)"', token)
                names += [named[1]] if named else []
                selectors.append((named[1] if named else "", token))
        i += 1
    check(bool(names), where, f"names no metric: {expr!r}")
    for name in names:
        check(name in exported, where, f"{name} is not an exported metric")
    known = set().union(*(exported.get(n, set()) for n in names)) if names else set()
    for name, matchers in selectors:
        body = matchers[1:-1]
        labels = [m.group(1) for m in MATCHER.finditer(body)]
        check(
            "".join(m.group(0) for m in MATCHER.finditer(body)).strip() == body.strip(),
            where,
            f"unreadable matchers {matchers}",
        )
        allowed = exported.get(name, set()) if name else known
        for label in set(labels) - allowed - {"__name__"}:
            check(False, where, f"{name}{{{label}}}: no such label")
    for label in grouped - {"le"}:
        check(label in known, where, f"groups by {label}, which none of {names} has")


def alert_rules(exported: dict[str, set[str]]) -> list[str]:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    alerts = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            check_query(rule["expr"], f"alerts.yml {name}", exported)
            if "alert" in rule:
                alerts.append(name)
                annotations = rule.get("annotations", {})
                check(
                    {"summary", "description", "runbook"} <= set(annotations),
                    f"alerts.yml {name}",
                    "needs summary, description and runbook annotations",
                )
                check("severity" in rule.get("labels", {}), f"alerts.yml {name}", "no severity")
    return alerts


def alert_tests(alerts: list[str]) -> None:
    tests = yaml.safe_load((OBSERVABILITY / "alerts_test.yml").read_text())
    firing: set[str] = set()
    silent: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    for alert in alerts:
        check(alert in firing, "alerts_test.yml", f"no test where {alert} fires")
        check(alert in silent, "alerts_test.yml", f"no test where {alert} stays silent")
    check(firing | silent <= set(alerts), "alerts_test.yml", "tests an alert that does not exist")


def dashboard(path: Path, exported: dict[str, set[str]], queries: dict[str, str]) -> None:
    where = path.relative_to(ROOT)
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        check(False, str(where), f"not JSON: {error}")
        return
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        check(key in board, str(where), f"no {key}")
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    source = variables.get("datasource", {})
    check(
        source.get("type") == "datasource" and source.get("query") == "prometheus",
        str(where),
        "needs a `datasource` variable of type datasource (prometheus)",
    )
    for name, variable in variables.items():
        if variable.get("type") != "query":
            continue
        check(variable.get("datasource") == DATASOURCE, f"{where} ${name}", "data source")
        query = variable.get("definition", "")
        inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        check(inner is not None, f"{where} ${name}", f"not label_values(selector, label): {query}")
        if inner:
            check_query(grafana_to_promql(inner[1]), f"{where} ${name}", exported)
    ids: set[int] = set()
    for panel in board.get("panels", []):
        at = f"{where} panel {panel.get('id')} {panel.get('title')!r}"
        check(panel.get("id") not in ids, at, "duplicate id")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        check(
            {"h", "w", "x", "y"} <= set(grid) and grid.get("x", 0) + grid.get("w", 0) <= 24,
            at,
            f"gridPos {grid}",
        )
        if panel.get("type") == "row":
            repeat = panel.get("repeat")
            check(repeat is None or repeat in variables, at, f"repeats unknown ${repeat}")
            check(not panel.get("collapsed"), at, "collapsed rows hide their panels from checks")
            continue
        check(panel.get("datasource") == DATASOURCE, at, "data source is not ${datasource}")
        targets = panel.get("targets", [])
        check(bool(targets), at, "no queries")
        refs = [t.get("refId") for t in targets]
        check(len(set(refs)) == len(refs) and None not in refs, at, f"refIds {refs}")
        for target in targets:
            check(target.get("datasource") == DATASOURCE, at, "query data source")
            expr = target.get("expr", "")
            promql = grafana_to_promql(expr)
            check_query(promql, at, exported)
            queries[f"{at} {target.get('refId')}"] = promql


def adapter(exported: dict[str, set[str]], queries: dict[str, str]) -> set[str]:
    """The adapter's rules; returns the external metric names it serves."""
    config = yaml.safe_load(ADAPTER_CONFIG.read_text())
    served = set()
    for rule in config.get("externalRules", []):
        where = f"{ADAPTER_CONFIG.relative_to(ROOT)} {rule['seriesQuery']}"
        check_query(rule["seriesQuery"], where, exported)
        (metric,) = re.findall(r"^[A-Za-z_:][A-Za-z0-9_:]*", rule["seriesQuery"])
        served.add(rule.get("name", {}).get("as") or metric)
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", metric)
            .replace("<<.LabelMatchers>>", 'namespace="x"')
            .replace("<<.GroupBy>>", "namespace")
        )
        check_query(query, where, exported)
        queries[where] = query
    return served


def autoscalers(rendered: list[Path], served: set[str]) -> None:
    for path in rendered:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] != "HorizontalPodAutoscaler":
                continue
            for metric in doc["spec"].get("metrics", []):
                if metric["type"] == "External":
                    name = metric["external"]["metric"]["name"]
                    check(
                        name in served,
                        f"{path.stem} HPA {doc['metadata']['name']}",
                        f"external metric {name} is not served by the Prometheus adapter",
                    )


def write_queries(queries: dict[str, str], out: Path) -> None:
    """Each query as a recording rule, for `promtool check rules` to parse."""
    rules = [
        {"record": f"check:query_{i}", "expr": expr} for i, expr in enumerate(queries.values())
    ]
    out.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries-out", type=Path, required=True)
    parser.add_argument("rendered", type=Path, nargs="*", help="rendered kustomize overlays")
    args = parser.parse_args()
    exported = series()
    alerts = alert_rules(exported)
    alert_tests(alerts)
    queries: dict[str, str] = {}
    boards = sorted(DASHBOARDS.glob("*.json"))
    check(bool(boards), str(DASHBOARDS.relative_to(ROOT)), "no dashboard")
    for path in boards:
        dashboard(path, exported, queries)
    autoscalers(args.rendered, adapter(exported, queries))
    write_queries(queries, args.queries_out)
    for problem in problems:
        print("FAIL", problem)
    if problems:
        sys.exit(1)
    print(
        f"{len(alerts)} alerts, {len(boards)} dashboard(s) and {len(queries)} queries "
        "use only exported metrics"
    )


if __name__ == "__main__":
    main()

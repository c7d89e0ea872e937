"""The Markdown report: decision, failed gates, top deltas, slice composition, provenance."""

from __future__ import annotations

from typing import Any

from testbed.adapters import storage
from testbed.pipeline.context import RunContext


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(ctx: RunContext, record: dict[str, Any]) -> str:
    gates = storage.read_json(ctx.uri("gates.json"))
    metrics = storage.read_json(ctx.uri("metrics.json"))
    stats = storage.read_json(ctx.uri("slice", "stats.json"))
    k = metrics["k"]
    lines = [f"# Testbed run `{record['run_id']}`: **{record['decision']}**", ""]
    lines += [f"- {reason}" for reason in record["reasons"]] or ["All gates passed."]
    lines += ["", "## Gates", "", "| gate | stratum | observed | interval | threshold | p-value | outcome |",
              "|---|---|---|---|---|---|---|"]
    ordered = sorted(gates["gates"], key=lambda g: {"fail": 0, "inconclusive": 1, "pass": 2}[g["outcome"]])
    for g in ordered:
        interval = "n/a" if not g["interval"] else f"[{_num(g['interval'][0])}, {_num(g['interval'][1])}]"
        lines.append(f"| {g['name']} ({g['metric']}) | {g['stratum']} | {_num(g['observed'])} | {interval} | "
                     f"{_num(g['threshold'])} | {_num(g['p_value'])} | {g['outcome']} |")
    lines += ["", f"## Metrics (all users, K={k})", "", "| metric | control | candidate | delta | 95% CI |",
              "|---|---|---|---|---|"]
    for name, delta in metrics["deltas"]["all"].items():
        lines.append(f"| {name} | {_num(delta['control'])} | {_num(delta['candidate'])} | {_num(delta['delta'])} | "
                     f"[{_num(delta['interval'][0])}, {_num(delta['interval'][1])}] |")
    for name in (f"coverage@{k}",):
        control = metrics["models"]["control"]["all"].get(name)
        candidate = metrics["models"]["candidate"]["all"].get(name)
        lines.append(f"| {name} | {_num(control)} | {_num(candidate)} | "
                     f"{_num(candidate - control if control is not None and candidate is not None else None)} | n/a |")
    lines += ["", "## Slice", "", f"{stats['users']} users, {stats['rows']['events']} events "
              f"({stats['strategy']} sampling, seed {stats['seed']}).", "",
              "| stratum | users | events | eligible |", "|---|---|---|---|"]
    for stratum, row in stats["strata"].items():
        lines.append(f"| {stratum} | {row['users']} | {row['events']} | {row.get('eligible_users', 'n/a')} |")
    lines += ["", "## Provenance", "", f"- manifest sha256 `{record['manifest_digest']}`",
              f"- lake fingerprint `{record['lake_fingerprint']}`", f"- code `{record['code_version']}`"]
    lines += [f"- {role} model sha256 `{record['models'][role]['sha256']}`" for role in ("control", "candidate")]
    return "\n".join(lines) + "\n"

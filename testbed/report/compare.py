"""`testbed compare RUN_A RUN_B`: how two run records differ, as data (`--json`,
schemas/compare-result.schema.json) and as an aligned text table.

It contrasts the inputs (manifest digest, lake fingerprint, code version, model checksums, slice hash), the
decisions, every gate whose outcome changed (or that exists in one run only), the metric deltas of all users,
and drift (features that started or stopped drifting, PSI side by side).
"""

from __future__ import annotations

from typing import Any

from testbed.record.evaluation import MetricDelta
from testbed.record.gates import GateRow
from testbed.record.run import RunRecord
from testbed.report import attribution, cohorts, facts
from testbed.report import list_change as list_change_report
from testbed.report.inputs import RunData

TOP_DRIFT = 10


def _side(data: RunData) -> dict[str, Any]:
    return {"run_id": data.run_id, "uri": data.run_uri, "decision": data.decision,
            "gate_counts": facts.gate_counts(data.gates) if data.gates is not None else {},
            "drifted": facts.drifted_count(data.drift)}


def _inputs(a: RunData, b: RunData) -> dict[str, bool | None]:
    """Whether both runs had the same inputs; None where either record does not say (no completed run.json)."""
    left, right = a.completed, b.completed
    if left is None or right is None:
        return dict.fromkeys(("manifest", "lake", "code", "models", "slice"))

    def shas(record: RunRecord) -> dict[str, str]:
        return {role: model.sha256 for role, model in record.models.items()}

    return {"manifest": left.manifest_digest == right.manifest_digest,
            "lake": left.lake_fingerprint == right.lake_fingerprint, "code": left.code_version == right.code_version,
            "models": shas(left) == shas(right) if shas(left) and shas(right) else None,
            "slice": left.slice.content_sha256 == right.slice.content_sha256
            if left.slice.content_sha256 and right.slice.content_sha256 else None}


def _gate_key(g: GateRow) -> tuple[str, str]:
    return g.name, g.stratum


def _gate_side(g: GateRow | None) -> dict[str, Any] | None:
    if g is None:
        return None
    return {"outcome": g.outcome, "observed": g.observed if facts.is_number(g.observed) else None,
            "threshold": g.threshold if facts.is_number(g.threshold) else None}


def _gates(a: RunData, b: RunData) -> list[dict[str, Any]]:
    left = {_gate_key(g): g for g in facts.ordered_gates(a.gates)}
    right = {_gate_key(g): g for g in facts.ordered_gates(b.gates)}
    keys = list(left) + [k for k in right if k not in left]
    out = []
    for key in keys:
        ga, gb = left.get(key), right.get(key)
        changed = ga is None or gb is None or ga.outcome != gb.outcome
        either = ga if ga is not None else gb
        out.append({"name": key[0], "stratum": key[1], "metric": either.metric if either is not None else None,
                    "a": _gate_side(ga), "b": _gate_side(gb), "changed": changed})
    return sorted(out, key=lambda g: (not g["changed"], keys.index((g["name"], g["stratum"]))))


def _delta_of(d: MetricDelta | None) -> float | None:
    return float(d.delta) if d is not None and facts.is_number(d.delta) else None


def _metrics(a: RunData, b: RunData) -> list[dict[str, Any]]:
    left, right = facts.deltas(a.metrics), facts.deltas(b.metrics)
    out = []
    for name in sorted(set(left) | set(right)):
        da, db = _delta_of(left.get(name)), _delta_of(right.get(name))
        out.append({"metric": name, "a": da, "b": db, "change": db - da if da is not None and db is not None else None,
                    "a_interval": left[name].interval if name in left else None,
                    "b_interval": right[name].interval if name in right else None})
    return out


def _drift(a: RunData, b: RunData) -> dict[str, Any]:
    left = {f.feature: f for f in facts.drift_features(a.drift)}
    right = {f.feature: f for f in facts.drift_features(b.drift)}
    drifted_a = {n for n, f in left.items() if f.drifted}
    drifted_b = {n for n, f in right.items() if f.drifted}
    names = list(right) + [n for n in left if n not in right]
    features = [{"feature": n, "a_psi": left[n].psi if n in left else None,
                 "b_psi": right[n].psi if n in right else None,
                 "a_drifted": n in drifted_a if a.drift is not None else None,
                 "b_drifted": n in drifted_b if b.drift is not None else None} for n in names[:TOP_DRIFT]]
    both = a.drift is not None and b.drift is not None  # a run without diagnostics says nothing about drift
    return {"a_available": a.drift is not None, "b_available": b.drift is not None,
            "newly_drifted": sorted(drifted_b - drifted_a) if both else [],
            "no_longer_drifted": sorted(drifted_a - drifted_b) if both else [], "features": features}


def compare(a: RunData, b: RunData) -> dict[str, Any]:
    return {"version": 1, "a": _side(a), "b": _side(b), "same_inputs": _inputs(a, b),
            "decision_changed": a.decision != b.decision, "gates": _gates(a, b), "metrics": _metrics(a, b),
            "drift": _drift(a, b),
            "attribution": {"a": attribution.compare_side(a.attribution), "b": attribution.compare_side(b.attribution)},
            "list_change": {"a": list_change_report.as_json(a.metrics), "b": list_change_report.as_json(b.metrics)},
            "cohorts": {"a": cohorts.summary(a), "b": cohorts.summary(b)}}


def _same(value: bool | None) -> str:
    return "n/a" if value is None else ("same" if value else "different")


def text(result: dict[str, Any]) -> list[str]:
    """Aligned lines: one column per run, changed gates first."""
    a, b = result["a"], result["b"]
    width = max(28, len(a["run_id"]) + 2)
    lines = [f"{'':<14}{'A':<{width}}B",
             f"{'run':<14}{a['run_id']:<{width}}{b['run_id']}",
             f"{'decision':<14}{a['decision']:<{width}}{b['decision']}"
             + ("   (changed)" if result["decision_changed"] else ""),
             f"{'gates':<14}{facts.counts_text(a['gate_counts']):<{width}}{facts.counts_text(b['gate_counts'])}",
             f"{'inputs':<14}" + ", ".join(f"{k} {_same(v)}" for k, v in result["same_inputs"].items())]
    changed = [g for g in result["gates"] if g["changed"]]
    lines.append("")
    if changed:
        lines.append("gates that changed")
        for g in changed:
            sides = [f"{s['outcome']} {facts.num(s['observed'])}" if s else "absent" for s in (g["a"], g["b"])]
            lines.append(f"  {g['name'] + ' / ' + g['stratum']:<36}{sides[0]:<22}-> {sides[1]}")
    else:
        lines.append("no gate changed its outcome")
    if result["metrics"]:
        lines += ["", f"{'delta (all users)':<20}{'A':>10}{'B':>10}{'B - A':>10}"]
        lines += [f"{m['metric']:<20}{facts.signed(m['a']):>10}{facts.signed(m['b']):>10}"
                  f"{facts.signed(m['change']):>10}" for m in result["metrics"]]
    lines += ["", *(f"lists {side.upper()}: {c['summary'] if c else 'n/a'}"
                    for side, c in result["list_change"].items())]
    lines += [f"cohorts {side.upper()}: {text or 'n/a'}" for side, text in result["cohorts"].items()]
    drift = result["drift"]
    lines.append("")
    if not (drift["a_available"] or drift["b_available"]):
        lines.append("drift: no drift diagnostics in either run")
    else:
        lines.append(f"drift: A {a['drifted'] if drift['a_available'] else 'n/a'} drifted, "
                     f"B {b['drifted'] if drift['b_available'] else 'n/a'} drifted")
        if drift["newly_drifted"]:
            lines.append(f"  newly drifted in B: {', '.join(drift['newly_drifted'])}")
        if drift["no_longer_drifted"]:
            lines.append(f"  no longer drifted in B: {', '.join(drift['no_longer_drifted'])}")
        for f in drift["features"]:
            lines.append(f"  {f['feature']:<34}PSI {facts.num(f['a_psi']):>8} -> {facts.num(f['b_psi']):>8}")
    lines += attribution.compare_lines(result["attribution"]["a"], result["attribution"]["b"])
    return lines

"""The what-if step, after scoring: catalogue what-ifs, written to `whatif.json` when the manifest has a
`whatif` block (without one the step returns at once and writes nothing).

A seeded subset of the slice's users (at most `whatif.max_users`) is scored by both validated models through
the score step's own functions (testbed.pipeline.score: same candidates, features, matrix and top K), once
on the catalogue as it is (the baseline) and once per scenario on the perturbed catalogue
(testbed.core.whatif). Labels are those users' labels, built from the slice as the evaluate step builds
them (testbed.pipeline.slice_data.labels), unchanged. Metrics are the run's own (testbed.core.metrics),
plus exposure shares of new and affected items.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import metrics, whatif
from testbed.core.roles import ROLES
from testbed.errors import ManifestError
from testbed.manifest import Manifest, WhatIfScenario
from testbed.pipeline import candidates_table, feature_sets, slice_data
from testbed.pipeline.context import RunContext
from testbed.pipeline.score import candidate_matrix, feature_inputs, load_models, rank
from testbed.record import io
from testbed.record.steps import WhatIfResult, WhatIfSkipped
from testbed.record.whatif import WhatIfDocument

SKIPPED = WhatIfSkipped(scenarios=0, skipped="the manifest has no whatif block")


def perturb(scenario: WhatIfScenario, index: int, items: pa.Table,
            rng: np.random.Generator) -> tuple[pa.Table, set[str], set[str], dict[str, Any]]:
    """(perturbed catalogue, new item ids, affected item ids, params) of one scenario."""
    where = f"manifest: whatif.scenarios.{index}"
    if scenario.kind == "cold_start_items":
        count = int(scenario.items or 0)
        perturbed = whatif.cold_start_items(items, count, rng)
        new = set(perturbed.column("item_id").to_pylist()[items.num_rows:])
        return perturbed, new, new, {"items": count}
    category, fraction = str(scenario.category), float(scenario.fraction or 0.0)
    if not pc.any(pc.equal(items.column("category"), category)).as_py():
        raise ManifestError(f"{where}.category: no item of the slice's catalogue is in category {category!r}")
    affected = set(items.filter(pc.equal(items.column("category"), category)).column("item_id").to_pylist())
    return whatif.shift_prices(items, category, fraction), set(), affected, {"category": category,
                                                                              "fraction": fraction}


def run_whatif(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    """Score the what-if scenarios and write `whatif.json`; skipped (and no file) when there are none or a model
    is a rankings file or brings its own candidates table."""
    spec = manifest.whatif
    if spec is None:
        return SKIPPED.model_dump(mode="json")
    if given := manifest.models.roles_of("rankings"):  # a fixed list cannot answer a changed catalogue
        return WhatIfSkipped(scenarios=0, skipped=f"what-ifs re-score both models on a changed catalogue and "
                             f"{' and '.join(given)} is a rankings file").model_dump(mode="json")
    if retrieved := candidates_table.roles(manifest):  # nor can a fixed candidate set (it never saw new items)
        return WhatIfSkipped(scenarios=0, skipped=f"what-ifs re-score both models on a changed catalogue and "
                             f"{' and '.join(retrieved)} scores a fixed candidates table").model_dump(mode="json")
    if declared := [role for role in ROLES if getattr(manifest.models, role).generators is not None]:
        return WhatIfSkipped(scenarios=0, skipped=f"what-ifs re-score both models on the default candidate stage "
                             f"and {' and '.join(declared)} declares its own generators").model_dump(mode="json")
    k = manifest.evaluation.k
    rng = np.random.default_rng(spec.seed)
    users = whatif.pick_users(ctx.storage.read_parquet(ctx.layout.slice_table("users")).column("user_id").to_pylist(),
                       spec.max_users, rng)
    chosen = pa.array(users, pa.string())
    labels = slice_data.labels(ctx, manifest)
    labels = labels.filter(pc.is_in(labels.column("user_id"), value_set=chosen))
    catalogue_size = io.read(ctx.storage, ctx.layout.slice_stats).catalogue_size
    items = ctx.storage.read_parquet(ctx.layout.slice_table("items"))
    sets = feature_sets.by_role(ctx.storage, manifest)
    models = load_models(ctx.storage, manifest, sets)
    inputs = feature_inputs(ctx, manifest, sets)
    with slice_data.session(ctx) as session:
        session.prepare(manifest.time.cutoff, manifest.features.windows_days)
        session.candidates(pa.table({"user_id": chosen}), manifest.evaluation.candidates_per_user)
        session.snapshot_candidates()
        baseline_rankings = rank(candidate_matrix(session, models, inputs), models, k).rankings
        scenarios: list[dict[str, Any]] = []
        changes: dict[str, list[float]] = {role: [] for role in ROLES}
        primary = metrics.PRIMARY.at(k)
        for index, scenario in enumerate(spec.scenarios):
            perturbed, new, affected, params = perturb(scenario, index, items, rng)
            session.use_items(perturbed)
            session.restore_candidates()
            if new:
                params["candidate_rows_added"] = whatif.add_cold_candidates(session, sorted(new))
            rankings = rank(candidate_matrix(session, models, inputs.with_items(perturbed)), models, k).rankings
            session.use_items(items)
            size = catalogue_size + len(new)
            base = whatif.summarise(baseline_rankings, labels, k, catalogue_size=size, new_items=set(),
                                    affected=affected)
            result = whatif.summarise(rankings, labels, k, catalogue_size=size, new_items=new, affected=affected)
            delta = {role: whatif.deltas(result[role], base[role]) for role in ROLES}
            for role in ROLES:
                before = base[role].get(primary)
                if before and primary in delta[role]:
                    changes[role].append(delta[role][primary] / before)
            scenarios.append({"name": scenario.name, "kind": scenario.kind, "params": params, "models": result,
                              "baseline": base, "deltas_vs_baseline": delta})
    graceful, relative = whatif.more_graceful(changes)
    document = WhatIfDocument.model_validate({
        "users": len(users), "seed": spec.seed, "k": k, "scenarios": scenarios, "more_graceful": graceful,
        "graceful_by": {"metric": primary, "mean_relative_change": relative},
        "labels": "unchanged: the run's label window for the same users"})
    io.write(ctx.storage, ctx.layout.whatif, document)
    return WhatIfResult(scenarios=len(scenarios), more_graceful=graceful).model_dump(mode="json")

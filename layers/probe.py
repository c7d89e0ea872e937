"""Runs inside the isolation check's child interpreter (`python -I -S layers/probe.py SPEC`), never imported.

SPEC is JSON: {"task": ..., "paths": [...], "layers": {name: python_dir}, "lib_dirs": [...]}.
`paths` become the front of sys.path (the function dir first, then each layer's python/, then the stand-in
for what the Lambda runtime itself ships). The child prints one JSON line on success and exits 1 on failure.
Standard library only until `paths` is in place, so nothing from the host's site-packages can leak in.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any


def loaded_from(layers: dict[str, str]) -> dict[str, list[str]]:
    """Top-level packages now in sys.modules, grouped by the layer (or other path) they were loaded from."""
    found: dict[str, set[str]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        for layer, root in layers.items():
            if path.startswith(root + os.sep):
                found.setdefault(layer, set()).add(name.split(".")[0])
    return {layer: sorted(names) for layer, names in sorted(found.items())}


def task_handler(spec: dict) -> dict:
    """Import the function's handler module; report what each layer contributed."""
    import handler

    assert callable(handler.lambda_handler), "handler.lambda_handler is not callable"
    return {"loaded_from": loaded_from(spec["layers"]),
            "scipy_stats_loaded": "scipy.stats" in sys.modules,
            "lightgbm_loaded": "lightgbm" in sys.modules}


def libgomp_mappings() -> list[str]:
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgomp" in line}
    return sorted(paths)


def task_lightgbm(spec: dict) -> dict:
    """Train and predict a tiny LambdaRank model (dense and scipy.sparse input); libgomp must come from lib/."""
    import lightgbm as lgb
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(7)
    groups = [12] * 25
    features = rng.normal(size=(sum(groups), 4))
    labels = np.clip((features[:, 0] * 1.5 + rng.normal(scale=0.5, size=len(features))).round(), 0, 3)
    params = {"objective": "lambdarank", "num_leaves": 7, "min_data_in_leaf": 2, "verbose": -1, "num_threads": 2}
    booster = lgb.train(params, lgb.Dataset(features, label=labels, group=groups), num_boost_round=10)
    dense = np.asarray(booster.predict(features))
    reloaded = lgb.Booster(model_str=booster.model_to_string())
    from_sparse = np.asarray(reloaded.predict(sparse.csr_matrix(features)))
    assert dense.shape == (len(features),) and np.isfinite(dense).all(), "bad predictions"
    assert np.allclose(dense, from_sparse), "reloaded model predicts differently"
    assert np.corrcoef(dense, features[:, 0])[0, 1] > 0.5, "the model did not learn the planted signal"

    gomp = libgomp_mappings()
    lib_dirs = [os.path.realpath(d) for d in spec["lib_dirs"]]
    assert gomp, "libgomp is not mapped into the process"
    outside = [p for p in gomp if not any(os.path.realpath(p).startswith(d + os.sep) for d in lib_dirs)]
    assert not outside, f"libgomp loaded from outside the layer's lib/: {outside}"
    return {"libgomp": gomp, "lightgbm": lgb.__version__, "predictions": len(dense)}


def task_scipy_stats(spec: dict) -> dict:
    """What testbed.core.stats needs: Student-t ppf, sf and cdf."""
    from scipy import stats

    ppf = float(stats.t.ppf(0.975, df=10))
    assert abs(ppf - 2.228138851986274) < 1e-9, ppf
    assert abs(float(stats.t.sf(ppf, df=10)) - 0.025) < 1e-12
    assert abs(float(stats.t.cdf(0.0, df=10)) - 0.5) < 1e-12
    return {"t_ppf_0975_df10": ppf}


def task_data(spec: dict) -> dict:
    """What the steps do with the data layer, so that a trimmed library that loads lazily fails here: Parquet
    written and read (file and buffer, columns, schema), datasets, JSON decoding, Acero's group-by, the compute
    kernels the steps call, and DuckDB over Parquet and Arrow in both directions."""
    import io

    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    table = pa.table({"user_id": [f"u{i % 7}" for i in range(1000)], "x": list(range(1000))})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.parquet")
        pq.write_table(table, path, compression="zstd", write_statistics=True)
        back = pq.read_table(path)
        assert back.equals(table), "Parquet round trip changed the table"
        assert ds.dataset(path, format="parquet").count_rows() == 1000
        assert pq.read_schema(path) == table.schema
        assert pc.sum(back["x"]).as_py() == 499500
        con = duckdb.connect()
        [(users, total)] = con.execute("SELECT count(DISTINCT user_id), sum(x) FROM read_parquet(?)", [path]).fetchall()
        assert (users, total) == (7, 499500), (users, total)
        arrow = con.sql("SELECT user_id, sum(x) AS s FROM back GROUP BY 1 ORDER BY 1").to_arrow_table()
        assert arrow.num_rows == 7
        con.register("registered", table)
        assert con.sql("SELECT count(*) FROM registered").fetchall() == [(1000,)]
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    assert pq.read_table(pa.BufferReader(buffer.getvalue()), columns=["x"]).num_columns == 1
    assert table.group_by("user_id").aggregate([("x", "count")]).num_rows == 7
    decoded = pajson.read_json(io.BytesIO(b'{"user_id": "u1", "x": 3, "extra": 1}\n{"user_id": "u2", "x": 4}'),
                               parse_options=pajson.ParseOptions(explicit_schema=table.schema,
                                                                 unexpected_field_behavior="ignore"))
    assert decoded.column_names == ["user_id", "x"] and decoded.num_rows == 2
    return {"pyarrow": pa.__version__, "duckdb": duckdb.__version__, "compute_kernels": exercise_compute(pc, pa),
            **smoke_data_libraries()}


def exercise_compute(pc: Any, pa: Any) -> int:
    """The compute kernels testbed calls (kernels are registered in libarrow_compute, loaded with pyarrow)."""
    users = pa.array(["u2", "u1", None, "u2"])
    lists = pa.array([[1, 2], [], [3]])
    ints = pa.array([1, 5])
    results = [
        pc.index_in(users, value_set=pa.array(["u1", "u2"])), pc.is_in(users, value_set=pa.array(["u1"])),
        pc.unique(users), pc.dictionary_encode(users), pc.fill_null(users, "none"), pc.count_distinct(users),
        pc.sort_indices(users), pc.array_sort_indices(users), pc.is_valid(users), pc.invert(pc.is_valid(users)),
        pc.binary_join_element_wise(users, users, "-"), pc.filter(users, pc.not_equal(users, "u1")),
        pc.any(pc.equal(users, "u1")), pc.list_value_length(lists), pc.list_flatten(lists),
        pc.if_else(pc.greater(ints, 2), 1, 0), pc.less(ints, 2), pc.less_equal(ints, 2), pc.greater_equal(ints, 2),
        pc.and_(pa.array([True]), pa.array([False])), pc.and_kleene(pa.array([True]), pa.array([None], pa.bool_())),
        pc.or_kleene(pa.array([False]), pa.array([True])), pc.round(pc.divide(pc.multiply(ints, 3), 2), 1),
        pc.mean(ints), pc.min(ints), pc.max(ints),
    ]
    assert pc.utf8_lpad(pc.cast(ints, pa.string()), width=3, padding="0").to_pylist() == ["001", "005"]
    return len(results)


def task_powertools(spec: dict) -> dict:
    """What testbed.observability does in Lambda: Logger, a Tracer subsegment with the tracer enabled (as it is
    in Lambda, which patches boto3 and the standard library through aws-xray-sdk) and an EMF metric."""
    os.environ.update(LAMBDA_TASK_ROOT=tempfile.gettempdir(), AWS_LAMBDA_FUNCTION_NAME="probe",
                      _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    log = Logger(service="probe")
    log.append_keys(step="probe")
    log.set_correlation_id("run")
    tracer = Tracer(service="probe")
    assert not tracer.disabled, "the tracer is disabled: not exercising the Lambda path"
    with tracer.provider.in_subsegment("## probe") as subsegment:
        subsegment.put_annotation(key="run_id", value="run")
    metrics = EphemeralMetrics(namespace="Probe", service="probe")
    metrics.add_dimension(name="step", value="probe")
    metrics.add_metric(name="StepSeconds", unit=MetricUnit.Seconds, value=1.0)
    metrics.flush_metrics()
    return {"xray_patched": sorted(name for name in sys.modules if name.startswith("aws_xray_sdk.ext."))}


def smoke_data_libraries() -> dict:
    import annotated_types  # noqa: F401
    import aws_xray_sdk.core  # noqa: F401
    import jsonschema
    import pydantic
    import pygal
    import sqlglot
    import yaml
    from aws_lambda_powertools import Logger

    class Item(pydantic.BaseModel):
        k: int

    assert Item.model_validate({"k": "3"}).k == 3
    jsonschema.validate({"k": 3}, {"type": "object", "properties": {"k": {"type": "integer"}}})
    assert yaml.safe_load("a: [1, 2]") == {"a": [1, 2]}
    assert sqlglot.transpile("SELECT to_hex(md5(to_utf8('a')))", read="trino", write="duckdb")
    Logger(service="probe")
    chart = pygal.Bar(js=[])  # the report's charts: static SVG, no script fetched
    chart.add("x", [1, 2])
    svg = chart.render(is_unicode=True)
    assert svg.startswith("<?xml") and "<svg" in svg and "kozea.github.io" not in svg
    return {"pydantic": pydantic.VERSION, "sqlglot": sqlglot.__version__, "pygal": pygal.__version__}


TASKS = {"handler": task_handler, "lightgbm": task_lightgbm, "scipy_stats": task_scipy_stats, "data": task_data,
         "powertools": task_powertools}


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path[:0] = spec["paths"]
    result = TASKS[spec["task"]](spec)
    result["python"] = ".".join(map(str, sys.version_info[:3]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Build the Lambda layers, report their sizes against the 250 MiB budget, and check that they work in isolation.

    python layers/build.py [--out build/layers] [--check-only] [--host] [--no-pyc] [--scipy-stats]

Builds `<out>/<layer>/python/` (and `<out>/lightgbm/lib/`) for the Lambda platform (manylinux x86_64, CPython
3.12) from the pinned `layers/<layer>/requirements.txt`, trims what no function loads, then prints one JSON
summary on stdout: each layer's unzipped and zipped size, and each function's total (code + its layers) against
the 250 MiB unzipped budget. It then checks, each in a fresh `python -I -S` child whose sys.path holds only the
function dir, the function's layers and a stand-in for what the Lambda runtime ships (boto3): every handler
imports; lightgbm trains and predicts with libgomp mapped from the layer's lib/; pyarrow round-trips Parquet and
DuckDB queries it. It also times the score handler's cold import (`-X importtime`, median of 3).
Exit status 1 when a function is over budget or leaves less than 20 MiB of headroom under it, or a check fails;
2 when nothing could be checked.

The checks need a CPython 3.12 (the layers hold cp312 extensions): found on PATH, under pyenv, or named by
$LAYERS_PYTHON312. Without one, `--host` builds a twin of every layer for the host interpreter (same pins, same
trimming, into `<out>-cp3XX`) and runs the checks there. Progress goes to stderr; stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the steps come from the step table
from testbed.steps import STEPS  # noqa: E402

HERE = ROOT / "layers"
PROBE = HERE / "probe.py"
MIB = 1024 * 1024
BUDGET_MIB = 250.0  # a function's code plus all its layers, unzipped
HEADROOM_MIB = 20.0  # kept free under the budget in every function, so a dependency bump does not break a deploy
DIRECT_UPLOAD_BYTES = 50 * 1000 * 1000  # a zip above this needs S3 (CDK uploads assets to S3 anyway)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
LAMBDA_PYTHON = (3, 12)
LAYERS = ("data", "lightgbm", "project")
# Third-party layers ship bytecode only (17 MiB of sources less; tracebacks keep file and line, not the source
# text). The project layer keeps its sources: testbed's own tracebacks stay readable, for 0.9 MiB.
SOURCELESS_LAYERS = ("data", "lightgbm")
LAMBDA_LAYER_PYTHON = "/opt/python"  # where Lambda mounts a layer's python/

# Removed from every layer: console scripts, bytecode for the wrong interpreter, tests, C headers and sources,
# Cython sources, type stubs and static libraries. None of it is loaded at run time.
BUILD_ONLY_DIRS = {"__pycache__", "tests", "include", "includes"}
BUILD_ONLY_SUFFIXES = (".pyc", ".pyi", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".c", ".cc", ".cpp", ".a")
BUILD_ONLY_FILES = {"conftest.py"}
# Removed per layer (globs relative to python/).
LAYER_TRIMS: dict[str, tuple[str, ...]] = {
    "data": (
        "bin", "*-stubs",
        "pyarrow/*flight*",  # Arrow Flight RPC: libarrow_flight alone is 30 MB; nothing here speaks Flight
        "pyarrow/_s3fs*", "pyarrow/libarrow_s3*",  # pyarrow.fs.S3FileSystem (14 MiB): S3 goes through boto3
        "pyarrow/_pyarrow_cpp_tests*", "pyarrow/src",
        # Optional pyarrow modules that pyarrow imports inside `try: ... except ImportError` and testbed never
        # uses: the Azure, GCS and HDFS file systems, ORC, Feather, Parquet encryption and Substrait.
        # (libarrow_substrait stays: libarrow_python and every extension module link it.)
        "pyarrow/_azurefs*", "pyarrow/_gcsfs*", "pyarrow/_hdfs*",
        "pyarrow/_orc*", "pyarrow/_dataset_orc*", "pyarrow/orc.py", "pyarrow/_feather*", "pyarrow/feather.py",
        "pyarrow/_parquet_encryption*", "pyarrow/_dataset_parquet_encryption*",
        "pyarrow/libarrow_python_parquet_encryption*", "pyarrow/parquet/encryption.py",
        "pyarrow/_substrait*", "pyarrow/substrait.py",
        "numpy/_pyinstaller", "numpy/_core/lib", "numpy/random/lib",
        # numpy's test-only extension modules (1.6 MiB): only numpy's own test suite imports them
        "numpy/_core/_simd.*", "numpy/_core/_*_tests.*",
        "duckdb/experimental",  # DuckDB's PySpark-compatible API (1.2 MiB); `import duckdb` does not load it
        # Powertools features testbed does not use (Logger, Tracer and metrics import none of them): the REST
        # and GraphQL event handlers with their Swagger UI bundle, and the utilities other than jmespath_utils
        # (which Logger imports), typing and metadata.
        "aws_lambda_powertools/event_handler",
        *(f"aws_lambda_powertools/utilities/{name}" for name in (
            "auth_alpha", "batch", "circuit_breaker", "data_classes", "data_masking", "feature_flags",
            "idempotency", "kafka", "parameters", "parser", "streaming", "validation")),
        "pygal/test",  # pygal's own test suite (0.27 MiB; BUILD_ONLY_DIRS only knows `tests`)
        # (numpy/f2py stays: scipy's array_api_compat runs `from numpy import *`, which imports it)
    ),
    "lightgbm": ("bin",),
    "project": (),
}
SCIPY_FOR_LIGHTGBM = ("_lib", "sparse")  # what `import lightgbm` loads
SCIPY_FOR_STATS = ("special", "stats", "optimize", "linalg", "spatial", "interpolate", "integrate", "ndimage",
                   "fft", "constants")  # what `from scipy import stats` loads (testbed.core.stats today)

# Marker environment of the Lambda python3.12 x86_64 runtime, for the dependency check.
LAMBDA_MARKERS = {
    "python_version": "3.12", "python_full_version": "3.12.0", "implementation_version": "3.12.0",
    "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix",
    "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "extra": "",
}


@dataclass(frozen=True)
class Layout:
    """Which layers each function gets, and which scipy subpackages the lightgbm layer keeps."""

    name: str
    function_layers: dict[str, tuple[str, ...]]
    scipy_keep: tuple[str, ...]
    scipy_drop: tuple[str, ...]  # inside kept subpackages


BASE = ("data", "project")
WITH_LIGHTGBM = ("data", "lightgbm", "project")
# Every step of the step table is a function; those that load models (needs_lightgbm) get LightGBM.
# testbed.core.stats has a scipy-free Student-t, so gate and evaluate need no scipy.
RECOMMENDED = Layout(
    name="recommended",
    function_layers={step.folder: WITH_LIGHTGBM if step.needs_lightgbm else BASE for step in STEPS},
    scipy_keep=SCIPY_FOR_LIGHTGBM,
    # `import scipy.sparse` loads neither sparse.linalg nor sparse.csgraph (lazy submodules, and lightgbm uses
    # neither); sparse.linalg is the only kept part that needs scipy.libs (OpenBLAS, 29 MiB), which then goes too.
    # cobyqa and pyprima are scipy.optimize's solvers, and scipy.optimize is not kept.
    scipy_drop=("sparse/linalg", "sparse/csgraph", "_lib/cobyqa", "_lib/pyprima"),
)
# Today's code as it is: scipy.stats in the lightgbm layer and that layer on gate and evaluate. Over budget.
SCIPY_STATS = Layout(
    name="scipy-stats",
    function_layers={**RECOMMENDED.function_layers, "evaluate": WITH_LIGHTGBM, "gate": WITH_LIGHTGBM},
    scipy_keep=SCIPY_FOR_LIGHTGBM + SCIPY_FOR_STATS,
    scipy_drop=(),
)
LAYOUTS = {layout.name: layout for layout in (RECOMMENDED, SCIPY_STATS)}


@dataclass(frozen=True)
class Target:
    """One build: the Lambda build (cp312) or the host twin, the interpreter that can check it, its layout."""

    out: Path
    python_version: tuple[int, int]
    check_python: str | None
    layout: Layout = RECOMMENDED

    @property
    def tag(self) -> str:
        return "cp" + "".join(map(str, self.python_version))

    @property
    def runtime_stub(self) -> Path:
        return self.out.parent / f"lambda-runtime-{self.tag}" / "python"

    @property
    def info_file(self) -> Path:
        return self.out / "build-info.json"

    def python_dir(self, layer: str) -> Path:
        return self.out / layer / "python"

    def lib_dirs(self, layers: tuple[str, ...]) -> list[Path]:
        return [self.out / layer / "lib" for layer in layers if (self.out / layer / "lib").is_dir()]


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(cmd: list[str]) -> None:
    """Run a command; on failure show its output and raise."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


# ---------------------------------------------------------------- interpreters

def python_reports(python: str, version: tuple[int, int]) -> bool:
    try:
        out = subprocess.run([python, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == dotted(version)


def find_python(version: tuple[int, int]) -> str | None:
    """A working CPython of `version`: $LAYERS_PYTHON312, PATH, pyenv's versions, then the usual prefixes."""
    name = f"python{dotted(version)}"
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [os.environ.get("LAYERS_PYTHON" + "".join(map(str, version))), shutil.which(name)]
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{dotted(version)}.*", "bin", name)),
                         reverse=True)
    candidates += [f"/usr/local/bin/{name}", f"/usr/bin/{name}"]
    return next((c for c in candidates if c and python_reports(c, version)), None)


# ---------------------------------------------------------------- install

def pip_target_args(python_version: tuple[int, int]) -> list[str]:
    args = ["--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", dotted(python_version)]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def pip_install(requirements: Path, target: Path, python_version: tuple[int, int]) -> None:
    """Wheels for manylinux x86_64 and the given CPython, exactly as pinned (no dependency resolution)."""
    run([sys.executable, "-m", "pip", "install", *pip_target_args(python_version), "--no-compile",
         "--target", str(target), "-r", str(requirements)])


def install_layer(target: Target, layer: str) -> None:
    shutil.rmtree(target.out / layer, ignore_errors=True)
    target.python_dir(layer).mkdir(parents=True)
    if layer == "project":
        copy_project(target.python_dir(layer))
    else:
        pip_install(HERE / layer / "requirements.txt", target.python_dir(layer), target.python_version)


def copy_project(python_dir: Path) -> None:
    shutil.copytree(ROOT / "testbed", python_dir / "testbed", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def install_runtime_stub(target: Target) -> None:
    """boto3 and friends, which Lambda provides outside the layers: only ever on the check's sys.path."""
    shutil.rmtree(target.runtime_stub, ignore_errors=True)
    target.runtime_stub.mkdir(parents=True)
    pip_install(HERE / "lambda-runtime.txt", target.runtime_stub, target.python_version)


def pinned(path: Path) -> str:
    """The one requirement line of a file that holds comments and a single pin."""
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[0]


def bundled_libgomp(python_dir: Path) -> Path | None:
    found = sorted(python_dir.glob("lightgbm/**/libgomp*.so*")) + sorted(python_dir.glob("lightgbm.libs/libgomp*"))
    return found[0] if found else None


def libgomp_from_wheel(requirement: str, python_version: tuple[int, int], cache: Path) -> tuple[bytes, str]:
    """The libgomp that auditwheel grafted into a manylinux wheel's `<dist>.libs/`, and where it came from."""
    cache.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", *pip_target_args(python_version), "-d", str(cache), requirement])
    name, version = requirement.split("==")
    wheels = sorted(cache.glob(f"{name.replace('-', '_')}-{version}-cp%d%d-*.whl" % python_version))
    if not wheels:
        raise RuntimeError(f"no wheel for {requirement} in {cache}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next(m for m in wheel.namelist() if ".libs/libgomp" in m)
        return wheel.read(member), f"{wheels[0].name}: {member}"


def add_libgomp(target: Target) -> str:
    """Put libgomp.so.1 in lightgbm/lib/ (Lambda puts a layer's lib/ on LD_LIBRARY_PATH as /opt/lib)."""
    lib = target.out / "lightgbm" / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    bundled = bundled_libgomp(target.python_dir("lightgbm"))
    if bundled:
        data, source = bundled.read_bytes(), f"bundled in the lightgbm wheel: {bundled.name}"
    else:
        data, source = libgomp_from_wheel(pinned(HERE / "lightgbm" / "libgomp.txt"), target.python_version,
                                          target.out.parent / "cache")
    (lib / "libgomp.so.1").write_bytes(data)
    (lib / "libgomp.so.1").chmod(0o755)
    return source


# ---------------------------------------------------------------- trim

def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_build_only_files(python_dir: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(python_dir):
        for name in [d for d in dirnames if d in BUILD_ONLY_DIRS]:
            shutil.rmtree(Path(dirpath) / name)
            dirnames.remove(name)
        for name in filenames:
            if name.endswith(BUILD_ONLY_SUFFIXES) or name in BUILD_ONLY_FILES:
                (Path(dirpath) / name).unlink()


def remove_globs(python_dir: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in python_dir.glob(pattern):
            remove(path)


def trim_scipy(python_dir: Path, layout: Layout) -> None:
    """Keep only the scipy subpackages the layout's functions import."""
    scipy = python_dir / "scipy"
    if not scipy.is_dir():
        return
    for sub in scipy.iterdir():
        if sub.is_dir() and sub.name not in layout.scipy_keep:
            shutil.rmtree(sub)
    for inner in layout.scipy_drop:
        remove(scipy / inner)


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def elf_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*.so*")) if p.is_file() and not p.is_symlink() and is_elf(p)]


def elf_dynamic(path: Path, tag: str) -> list[str]:
    """Values of one dynamic-section tag (NEEDED, SONAME) as readelf shows them."""
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=False).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if f"({tag})" in line]


def dedupe_shared_libs(python_dir: Path) -> None:
    """Wheels cannot hold symlinks, so libfoo.so and libfoo.so.X.Y.Z arrive as full copies of libfoo.so.<soname>:
    the loader only ever asks for the soname, so the copies go."""
    for path in elf_files(python_dir):
        if not path.name.startswith("lib") or path.parent.name.endswith(".libs"):
            continue
        soname = next(iter(elf_dynamic(path, "SONAME")), None)
        twin = path.parent / soname if soname else None
        if twin and twin != path and twin.is_file() and twin.stat().st_size == path.stat().st_size:
            path.unlink()


def prune_grafted_libs(python_dir: Path) -> None:
    """Drop libraries in auditwheel's `<dist>.libs/` that nothing left in the layer loads (e.g. scipy.libs'
    OpenBLAS once the scipy parts that use it are gone)."""
    elves = elf_files(python_dir)
    grafted = {p.name: p for p in elves if p.parent.name.endswith(".libs")}
    wanted = [n for p in elves if p.name not in grafted for n in elf_dynamic(p, "NEEDED") if n in grafted]
    kept: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name not in kept:
            kept.add(name)
            wanted += [n for n in elf_dynamic(grafted[name], "NEEDED") if n in grafted]
    for name, path in grafted.items():
        if name not in kept:
            path.unlink()
    for libs in python_dir.glob("*.libs"):
        if libs.is_dir() and not any(libs.iterdir()):
            libs.rmdir()


def strip_binaries(python_dir: Path) -> None:
    """Strip symbol tables from extension modules and libraries. auditwheel's grafted `*.libs/` are left alone
    (stripping numpy.libs breaks loading)."""
    if not shutil.which("strip"):
        log("  strip not found: binaries left unstripped (layers will be larger)")
        return
    for path in elf_files(python_dir):
        if not path.parent.name.endswith(".libs"):
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=False, capture_output=True)


def trim_layer(target: Target, layer: str) -> None:
    python_dir = target.python_dir(layer)
    remove_build_only_files(python_dir)
    remove_globs(python_dir, LAYER_TRIMS[layer])
    trim_scipy(python_dir, target.layout)
    dedupe_shared_libs(python_dir)
    prune_grafted_libs(python_dir)
    strip_binaries(python_dir)


def compile_bytecode(python_dir: Path, python: str, sourceless: bool = False) -> None:
    """Ship .pyc compiled by the target interpreter: Lambda's /opt is read-only, so without them every cold start
    compiles every module again. unchecked-hash: the .py mtimes that zipping and unzipping change don't matter.
    `sourceless`: each .pyc goes beside its .py (legacy layout, which CPython imports without the source), records
    the path Lambda mounts it at for tracebacks, and the .py goes."""
    legacy = ["-b", "-s", str(python_dir), "-p", LAMBDA_LAYER_PYTHON] if sourceless else []
    subprocess.run([python, "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    *legacy, str(python_dir)], capture_output=True, check=False)
    if sourceless:
        remove_compiled_sources(python_dir)


def remove_compiled_sources(python_dir: Path) -> None:
    """Drop every .py whose .pyc sits beside it; a file compileall could not compile keeps its source."""
    for source in sorted(python_dir.rglob("*.py")):
        if source.with_suffix(".pyc").is_file():
            source.unlink()


def build(target: Target, pyc: bool) -> dict[str, object]:
    """Install and trim every layer and the runtime stand-in; returns what build-info.json records."""
    if pyc and not target.check_python:
        log("  no target interpreter to compile .pyc with: layers ship sources only")
        pyc = False
    for layer in LAYERS:
        log(f"building layer {layer} ({target.tag}, layout {target.layout.name}) ...")
        install_layer(target, layer)
        trim_layer(target, layer)
        if pyc:
            compile_bytecode(target.python_dir(layer), str(target.check_python), layer in SOURCELESS_LAYERS)
    libgomp = add_libgomp(target)
    log("installing the Lambda runtime stand-in (boto3) for the checks ...")
    install_runtime_stub(target)
    if target.check_python:
        compile_bytecode(target.runtime_stub, target.check_python)
    info = {"target": target.tag, "layout": target.layout.name, "pyc": pyc,
            "sourceless": [layer for layer in LAYERS if pyc and layer in SOURCELESS_LAYERS], "libgomp_source": libgomp}
    target.info_file.write_text(json.dumps(info, indent=2) + "\n")
    return info


# ---------------------------------------------------------------- sizes

def tree_bytes(path: Path) -> int:
    """What Lambda counts: the bytes of every file (functions' stray __pycache__ excluded, CDK ships none)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        if path.parent.name == "functions":
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in filenames)
    return total


def zipped_bytes(layer_dir: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(layer_dir.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(layer_dir))
        return archive.stat().st_size


def mib(n: int) -> float:
    return round(n / MIB, 1)


def largest_entries(python_dir: Path, count: int = 10) -> dict[str, float]:
    sizes = {p.name: tree_bytes(p) if p.is_dir() else p.stat().st_size for p in python_dir.iterdir()}
    return {name: mib(size) for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:count]}


def layer_sizes(target: Target, zipped: bool) -> dict[str, dict[str, object]]:
    report: dict[str, dict[str, object]] = {}
    for layer in LAYERS:
        size = tree_bytes(target.out / layer)
        entry: dict[str, object] = {"unzipped_bytes": size, "unzipped_mib": mib(size),
                                    "largest_mib": largest_entries(target.python_dir(layer))}
        if zipped:
            packed = zipped_bytes(target.out / layer)
            entry.update(zipped_mib=mib(packed), direct_upload_ok=packed <= DIRECT_UPLOAD_BYTES)
        report[layer] = entry
    scipy = target.python_dir("lightgbm") / "scipy"
    if scipy.is_dir():
        report["lightgbm"]["scipy_subpackages_mib"] = {p.name: mib(tree_bytes(p)) for p in sorted(scipy.iterdir())
                                                       if p.is_dir() and p.name != "__pycache__"}
    return report


def function_sizes(target: Target, layers: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    report = {}
    for step, names in target.layout.function_layers.items():
        code = tree_bytes(ROOT / "functions" / step)
        total = code + sum(int(layers[n]["unzipped_bytes"]) for n in names)  # type: ignore[call-overload]
        report[step] = {"layers": list(names), "code_bytes": code, **against_budget(total)}
    return report


def against_budget(total: int) -> dict[str, object]:
    """A function's unzipped total against the budget and the headroom kept under it."""
    return {"total_mib": mib(total), "budget_mib": BUDGET_MIB, "headroom_mib": round(BUDGET_MIB - total / MIB, 1),
            "within_budget": total <= BUDGET_MIB * MIB, "keeps_headroom": total <= (BUDGET_MIB - HEADROOM_MIB) * MIB}


def size_report(target: Target, zipped: bool = True) -> dict[str, dict[str, dict[str, object]]]:
    layers = layer_sizes(target, zipped)
    return {"layers": layers, "functions": function_sizes(target, layers)}


# ---------------------------------------------------------------- static checks

def dependency_problems(paths: list[Path], markers: dict[str, str]) -> list[str]:
    """Every Requires-Dist of every installed distribution, evaluated for the target runtime (not the host: the
    marker trap), is satisfied from the same paths. pip ran with --no-deps, so this is what guards the pins."""
    from importlib.metadata import distributions

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    dists = {canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[str(p) for p in paths])}
    problems = []
    for name, dist in sorted(dists.items()):
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(markers):
                continue
            have = dists.get(canonicalize_name(req.name))
            if have is None or not req.specifier.contains(have.version, prereleases=True):
                problems.append(f"{name} requires {req}: {'missing' if have is None else 'found ' + have.version}")
    return problems


def top_level_names(python_dir: Path) -> set[str]:
    """Names a directory adds to the merged /opt/python (a top-level __pycache__ merges file by file). A sourceless
    `x.pyc` counts as `x.py`: either one is module x."""
    if not python_dir.is_dir():
        return set()
    names = {p.name.removesuffix("c") if p.suffix == ".pyc" else p.name
             for p in python_dir.iterdir() if p.name != "__pycache__"}
    return names | {f"__pycache__/{p.name}" for p in python_dir.glob("__pycache__/*")}


def overlap_problems(target: Target) -> list[str]:
    """Layers merge into one /opt/python: no two layers may ship the same top-level name, and none may ship
    what the runtime provides (it would shadow the runtime's boto3/botocore)."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    runtime = top_level_names(target.runtime_stub)
    for layer in LAYERS:
        for name in sorted(top_level_names(target.python_dir(layer))):
            if name in seen:
                problems.append(f"{name} is in both {seen[name]} and {layer}")
            if name in runtime:
                problems.append(f"{layer} ships {name}, which the Lambda runtime provides")
            seen[name] = layer
    return problems


def static_checks(target: Target) -> dict[str, list[str]]:
    markers = LAMBDA_MARKERS if target.python_version == LAMBDA_PYTHON else {"extra": ""}
    report = {"layer_overlaps": overlap_problems(target)}
    for step, names in target.layout.function_layers.items():
        paths = [target.python_dir(n) for n in names] + [target.runtime_stub]
        report[f"dependencies:{step}"] = dependency_problems(paths, markers)
    return report


# ---------------------------------------------------------------- isolation checks

def child_env(target: Target, layers: tuple[str, ...]) -> dict[str, str]:
    """A bare environment: no PYTHON* variables, only the layers' lib/ on LD_LIBRARY_PATH (as /opt/lib)."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "LD_LIBRARY_PATH": ":".join(str(d) for d in target.lib_dirs(layers))}


def probe_paths(target: Target, layers: tuple[str, ...], function_dir: Path | None = None) -> list[str]:
    """Lambda's order: the function's code, the layers (merged in /opt/python), then the runtime's boto3."""
    paths = [str(function_dir)] if function_dir else []
    return paths + [str(target.python_dir(n)) for n in layers] + [str(target.runtime_stub)]


def run_probe(target: Target, task: str, layers: tuple[str, ...], function_dir: Path | None = None
              ) -> dict[str, object]:
    """One fresh isolated interpreter running one task of probe.py; its JSON result, or the error."""
    assert target.check_python, "no interpreter to run the checks"
    spec = {"task": task, "paths": probe_paths(target, layers, function_dir),
            "layers": {n: str(target.python_dir(n)) for n in layers} | {"lambda-runtime": str(target.runtime_stub)},
            "lib_dirs": [str(d) for d in target.lib_dirs(layers)]}
    proc = subprocess.run([target.check_python, "-I", "-S", "-B", str(PROBE), json.dumps(spec)],
                          capture_output=True, text=True, env=child_env(target, layers), cwd=tempfile.gettempdir(),
                          timeout=600, check=False)
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-6:]}
    return {"ok": True, **json.loads(proc.stdout.strip().splitlines()[-1])}


def isolation_checks(target: Target) -> dict[str, dict[str, object]]:
    results = {
        "lightgbm_train_predict": run_probe(target, "lightgbm", ("data", "lightgbm")),
        "pyarrow_parquet_duckdb": run_probe(target, "data", ("data",)),
        "powertools_tracer_metrics": run_probe(target, "powertools", ("data",)),
    }
    if "stats" in target.layout.scipy_keep:
        results["scipy_stats"] = run_probe(target, "scipy_stats", ("data", "lightgbm"))
    for step, layers in target.layout.function_layers.items():
        results[f"handler:{step}"] = run_probe(target, "handler", layers, ROOT / "functions" / step)
    return results


def top_level_import_us(stderr: str) -> tuple[int, int]:
    """(sum of the top-level cumulative times, the `handler` entry's) from `-X importtime` output, in us."""
    total = handler = 0
    for line in stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2][1:]
        if not name.startswith(" "):
            total += int(parts[1])
            handler = int(parts[1]) if name == "handler" else handler
    return total, handler


def cold_import_ms(target: Target, step: str = "score", runs: int = 3) -> dict[str, object]:
    """`python -X importtime -c "import handler"` with the function's layers on the path; -B so nothing is
    cached between runs (Lambda's /opt is read-only: only .pyc shipped in the layers count)."""
    assert target.check_python, "no interpreter to time the import"
    layers = target.layout.function_layers[step]
    code = f"import sys; sys.path[:0] = {probe_paths(target, layers, ROOT / 'functions' / step)!r}; import handler"
    totals, handlers = [], []
    for _ in range(runs):
        proc = subprocess.run([target.check_python, "-X", "importtime", "-I", "-S", "-B", "-c", code],
                              capture_output=True, text=True, env=child_env(target, layers),
                              cwd=tempfile.gettempdir(), check=False)
        if proc.returncode != 0:
            return {"function": step, "ok": False, "error": proc.stderr.strip().splitlines()[-5:]}
        total, handler = top_level_import_us(proc.stderr)
        totals.append(total / 1000)
        handlers.append(handler / 1000)
    return {"function": step, "ok": True, "python": target.check_python, "runs_ms": [round(t, 1) for t in totals],
            "median_total_ms": round(statistics.median(totals), 1),
            "median_handler_ms": round(statistics.median(handlers), 1)}


# ---------------------------------------------------------------- main

def make_target(out: Path, host: bool = False, layout: Layout | None = None) -> Target:
    """The build in `out` (or its host twin). Without a layout, the one the existing build recorded."""
    version = sys.version_info[:2] if host else LAMBDA_PYTHON
    if host:
        out = out.parent / f"{out.name}-cp{version[0]}{version[1]}"
    python = sys.executable if host else find_python(LAMBDA_PYTHON)
    if layout is None:
        info = out / "build-info.json"
        recorded = json.loads(info.read_text())["layout"] if info.is_file() else RECOMMENDED.name
        layout = LAYOUTS[recorded]
    return Target(out, (version[0], version[1]), python, layout)


def size_failures(functions: dict[str, dict[str, object]]) -> list[str]:
    """One line per function over the budget, or inside it but with less than the headroom left."""
    found = []
    for step, f in functions.items():
        if not f["within_budget"]:
            found.append(f"{step}: {f['total_mib']} MiB > {BUDGET_MIB} MiB budget")
        elif not f["keeps_headroom"]:
            found.append(f"{step}: {f['total_mib']} MiB leaves {f['headroom_mib']} MiB under {BUDGET_MIB} MiB, "
                         f"less than the {HEADROOM_MIB} MiB headroom")
    return found


def failures(summary: dict[str, object]) -> list[str]:
    found = size_failures(summary["functions"])  # type: ignore[arg-type]
    found += [f"{name}: {problems}" for name, problems in summary.get("static_checks", {}).items() if problems]  # type: ignore[attr-defined]
    found += [f"{name}: {r['error'][-1]}" for name, r in summary.get("isolation_checks", {}).items()  # type: ignore[attr-defined]
              if not r["ok"]]
    cold = summary.get("cold_import", {"ok": True})
    found += [] if cold["ok"] else [f"cold import: {cold['error'][-1]}"]  # type: ignore[index]
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "layers", help="build directory")
    parser.add_argument("--check-only", action="store_true", help="do not build: report on and check an existing build")
    parser.add_argument("--host", action="store_true",
                        help="build (or check) a twin of the layers for this interpreter and run the checks on it")
    parser.add_argument("--no-pyc", action="store_true", help="ship sources only (smaller, slower cold start)")
    parser.add_argument("--scipy-stats", action="store_true",
                        help="today's code as is: scipy.stats in the lightgbm layer for gate and evaluate")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = None if args.check_only else (SCIPY_STATS if args.scipy_stats else RECOMMENDED)
    target = make_target(args.out.resolve(), args.host, layout)
    summary: dict[str, object] = {"target": target.tag, "out": str(target.out), "layout": target.layout.name,
                                  "check_python": target.check_python}
    if not args.check_only:
        summary["build"] = build(target, pyc=not args.no_pyc)
    elif not target.info_file.is_file():
        log(f"no build in {target.out}: run without --check-only first")
        return 2
    summary.update(size_report(target))
    summary["static_checks"] = static_checks(target)
    if target.check_python is None:
        log(f"no CPython {dotted(LAMBDA_PYTHON)} found (PATH, pyenv, $LAYERS_PYTHON312): rerun with --host")
        print(json.dumps(summary, indent=2))
        return 2
    log(f"isolation checks with {target.check_python} ...")
    summary["isolation_checks"] = isolation_checks(target)
    summary["cold_import"] = cold_import_ms(target)
    problems = failures(summary)
    summary["ok"] = not problems
    print(json.dumps(summary, indent=2))
    for problem in problems:
        log(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

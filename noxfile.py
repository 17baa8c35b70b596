"""Developer sessions: ``nox -s tests``, ``lint``, ``demo``, ``bench``, ``docs``, ``mutants``.

The sessions that need torch share one project environment (``<envdir>/ssl4gie``) instead of one
venv each, because every fresh venv reinstalls torch (about 2 minutes, 5 GB). It is reused while
pyproject.toml is unchanged. ``SSL4GIE_NOX_ENVDIR`` moves it (CI keeps it in ~/.cache).
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nox

ROOT = Path(__file__).parent
ENVDIR = Path(os.environ.get("SSL4GIE_NOX_ENVDIR", ROOT / ".nox")).expanduser()
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"
nox.options.envdir = str(ENVDIR)


def project_env(session: nox.Session, extras: str = "dev") -> Path:
    """Create or reuse the shared environment with ssl4gie[extras] installed; return its bin dir."""
    env = ENVDIR / "ssl4gie"
    bindir = env / ("Scripts" if sys.platform == "win32" else "bin")
    if not (bindir / "python").exists():
        session.run(sys.executable, "-m", "venv", str(env), external=True)
    stamp = env / f".installed-{extras}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        session.run(
            str(bindir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-e",
            f".[{extras}]",
            external=True,
        )
        stamp.write_text(digest)
    return bindir


def run_in(session: nox.Session, bindir: Path, program: str, *args: str) -> None:
    env = {"HF_HUB_OFFLINE": "1", "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    session.run(str(bindir / program), *args, external=True, env=env)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (CPU only; about 10 minutes on 2 cores)."""
    bindir = project_env(session)
    run_in(
        session, bindir, "python", "-m", "pytest", *(session.posargs or ["-q", "--durations=15"])
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """The end-to-end demo on synthetic data, on CPU (see README)."""
    bindir = project_env(session)
    run_in(session, bindir, "ssl4gie", "demo", *session.posargs)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Benchmarks, never part of the tests (about 8 minutes on 2 CPU cores); docs/benchmarks.md.

    Every script in benchmarks/ writes benchmarks/results/<script>.json (results/gpu/ with
    ``--gpu``), then report.py writes docs/benchmarks.md from the CPU and GPU results both.
    Posargs go to every script: ``nox -s bench -- --gpu`` (``--compile`` adds the
    torch.compile rows). On a GPU machine without this environment: benchmarks/gpu/run.sh.
    """
    bindir = project_env(session, "dev,bench")
    benchmarks, results = ROOT / "benchmarks", ROOT / "benchmarks" / "results"
    if "--gpu" in session.posargs:
        results = results / "gpu"
    results.mkdir(parents=True, exist_ok=True)
    for script in sorted(benchmarks.glob("[!_]*.py")):
        if script.name != "report.py":
            out = str(results / f"{script.stem}.json")
            run_in(session, bindir, "python", str(script), *session.posargs, "--json", out)
    report, page = str(benchmarks / "report.py"), str(ROOT / "docs" / "benchmarks.md")
    scales = [benchmarks / "results", benchmarks / "results" / "gpu"]
    every = [str(path) for folder in scales for path in sorted(folder.glob("*.json"))]
    run_in(session, bindir, "python", report, "--json", *every, "--out", page)


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """The documentation site into site/: the docstring check, then ``mkdocs build --strict``.

    Broken links, unknown references and missing pages fail the build. It builds offline: no
    plugin fetches anything, and the hooks (docs/hooks/) generate pages from the code only.
    """
    bindir = project_env(session, "dev,docs")
    run_in(session, bindir, "python", str(ROOT / "docs" / "check_docstrings.py"))
    run_in(session, bindir, "mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


# Mutation testing: module under ssl4gie/ -> (functions mutated, None for all; the tests that run)
LOSSES = (
    "barlow_twins",
    "byol",
    "depth",
    "dice",
    "dino",
    "info_nce",
    "mae",
    "nt_xent",
    "simmim",
    "swav",
)
LOSS_KILLERS = "tests/losses/test_mutant_killers.py"
MUTANTS: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...]]] = {
    **{
        f"losses/{name}.py": (None, (f"tests/losses/test_{name}.py", LOSS_KILLERS))
        for name in LOSSES
    },
    "losses/_checks.py": (
        None,
        (*(f"tests/losses/test_{name}.py" for name in LOSSES), LOSS_KILLERS),
    ),
    "methods/momentum.py": (
        None,
        ("tests/methods/test_momentum_update.py", "tests/methods/test_loss_composition.py"),
    ),
    "methods/schedules.py": (
        None,
        ("tests/methods/test_momentum_update.py", "tests/methods/test_schedules.py"),
    ),
    **{
        f"methods/{name}.py": (("ssl_loss",), ("tests/methods/test_loss_composition.py",))
        for name in ("mocov3", "byol", "simclr", "barlow_twins", "swav")
    },
    "methods/dino.py": (
        ("ssl_loss", "teacher_temperature", "cosine_weight_decay", "features_by_resolution"),
        ("tests/methods/test_loss_composition.py", "tests/methods/test_momentum_update.py"),
    ),
    "methods/mae.py": (
        ("random_masking", "MAEDecoder.forward"),
        ("tests/methods/test_mae_unshuffle.py",),
    ),
    "tasks/metrics.py": (
        None,
        (
            "tests/tasks/test_metrics.py",
            "tests/tasks/test_perfect_outputs.py",
            "tests/tasks/test_metrics_mutants.py",
        ),
    ),
    "data/splits.py": (
        None,
        (
            "tests/data/test_splits.py",
            "tests/data/test_leaks_by_hand.py",
            "tests/data/test_splits_mutants.py",
        ),
    ),
    "data/near_duplicates.py": (
        None,
        (
            "tests/data/test_splits.py",
            "tests/data/test_leaks_by_hand.py",
            "tests/data/test_near_duplicates_mutants.py",
        ),
    ),
    "zoo/convert.py": (
        None,
        (
            "tests/zoo/test_convert_layouts.py",
            "tests/zoo/test_convert_messages.py",
            "tests/zoo/test_convert.py",
            "tests/zoo/test_dino_full_checkpoint.py",
            "tests/zoo/test_checkpoint_safety.py",
        ),
    ),
}
KILLED = ("ok_killed", "bad_timeout", "ok_suspicious")  # a timeout or slow-down is detected too


@nox.session(venv_backend="none")
def mutants(session: nox.Session) -> None:
    """Mutation testing of the core with mutmut 2, never part of ``tests`` (43 minutes for the
    whole list on 2 CPU cores); ``nox -s mutants -- tasks/metrics.py methods/momentum.py`` runs
    some modules, ``-- --jobs 1 ...`` one at a time (default two) when others share the machine.

    Each module of ``MUTANTS`` is mutated in its own copy of the tree under
    ``<envdir>/mutants`` (mutmut edits the source in place) against its own tests only; method
    files only in the functions named there. Prints the kill rate per module and writes the diff
    of every surviving mutant to ``<envdir>/mutants/survivors.md``; survivors judged equivalent
    are listed, with why, in tests/mutants-equivalent.md. Follow a run in ``<copy>/log.txt``;
    never open a copy's ``.mutmut-cache`` while it runs (a concurrent read makes mutmut 2.5.1
    stop with "Attribute Mutant.line is required", leaving the rest untested).
    """
    bindir = project_env(session)
    run_in(session, bindir, "python", "-m", "pip", "install", "-q", "mutmut==2.5.1")
    args, jobs = list(session.posargs), 2
    if "--jobs" in args:
        at = args.index("--jobs")
        jobs, args = int(args[at + 1]), args[:at] + args[at + 2 :]
    unknown = sorted(set(args) - set(MUTANTS))
    if unknown:
        session.error(f"unknown modules {unknown}: expected keys of noxfile.py's MUTANTS")
    chosen = [module for module in MUTANTS if not args or module in args]
    work = ENVDIR / "mutants"
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda module: _mutate(bindir, work, module), chosen))
    lines = ["# Surviving mutants", ""]
    for module, statuses, survivors in results:
        killed, total = sum(s in KILLED for s in statuses), len(statuses)
        rate = f"{100 * killed / total:.1f} %" if total else "no mutants (see log.txt)"
        session.log(f"{module}: {killed} / {total} killed ({rate})")
        lines += [f"## {module}: {killed} / {total} killed", "", *survivors]
    (work / "survivors.md").write_text("\n".join(lines) + "\n")
    session.log(f"surviving mutants: {work / 'survivors.md'}")


def _mutate(bindir: Path, work: Path, module: str) -> tuple[str, list[str], list[str]]:
    """Run mutmut on ``ssl4gie/<module>`` in a fresh copy, its tests through
    tests/_mutant_runner.py (imports paid once); return the statuses and survivors' diffs."""
    functions, tests = MUTANTS[module]
    copy, target = work / module.replace("/", "-"), f"ssl4gie/{module}"
    python, helper, sock = str(bindir / "python"), "tests/_mutant_runner.py", str(copy / "sock")
    shutil.rmtree(copy, ignore_errors=True)
    for folder in ("ssl4gie", "tests"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    runner = " ".join([python, helper, "run", sock, "-x", "-q", "-p", "no:cacheprovider", *tests])
    command = [python, "-m", "mutmut", "run", "--paths-to-mutate", target, "--runner", runner]
    command += ["--tests-dir", "tests", "--no-progress", "--simple-output", "-b", "60"]
    if functions:  # a pre_mutation hook skips the rest (mutmut's --use-patch-file crashes)
        spans = _function_lines(copy / target, functions)
        (copy / "mutmut_config.py").write_text(MUTMUT_CONFIG.format(spans=spans))
    # no bytecode: mutmut rewrites a file within the same second, and a cached .pyc whose
    # recorded mtime and size match the next mutant's would run the previous mutant instead
    env = {**os.environ, "PYTHONPATH": str(copy), "HF_HUB_OFFLINE": "1"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    with open(copy / "log.txt", "w") as log:
        server = subprocess.Popen([python, helper, "serve", sock], cwd=copy, env=env, stdout=log)
        while not Path(sock).exists() and server.poll() is None:
            time.sleep(0.5)
        subprocess.run(command, cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT)
        server.terminate()
    if not (copy / ".mutmut-cache").exists():
        return module, [], []
    with sqlite3.connect(copy / ".mutmut-cache") as db:
        rows = db.execute("SELECT id, status FROM mutant ORDER BY id").fetchall()
    survivors = [_diff(python, copy, i) for i, status in rows if status == "bad_survived"]
    return module, [status for _, status in rows if status != "skipped"], survivors


def _diff(python: str, copy: Path, mutant: int) -> str:
    show = [python, "-m", "mutmut", "show", str(mutant)]
    diff = subprocess.run(show, cwd=copy, capture_output=True, text=True).stdout.strip()
    return f"```diff\n{diff}\n```\n"


def _function_lines(path: Path, functions: tuple[str, ...]) -> list[tuple[int, int]]:
    """The 0-based line spans (first, last) of ``functions`` (``f`` or ``Class.f``) of a module,
    decorators included."""
    spans = []
    for node in ast.parse(path.read_text()).body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        for member in members:
            if isinstance(member, ast.FunctionDef):
                qualified = f"{node.name}.{member.name}" if member is not node else member.name
                if member.name in functions or qualified in functions:
                    first = min([member.lineno] + [d.lineno for d in member.decorator_list])
                    spans.append((first - 1, member.end_lineno - 1))
    return sorted(spans)


MUTMUT_CONFIG = """def pre_mutation(context):
    context.skip = not any(a <= context.current_line_index <= b for a, b in {spans})
"""

"""Developer sessions: ``nox -s tests``, ``lint``, ``demo``, ``bench``, ``docs``.

The sessions that need torch share one project environment (``<envdir>/ssl4gie``) instead of one
venv each, because every fresh venv reinstalls torch (about 2 minutes, 5 GB). It is reused while
pyproject.toml is unchanged. ``SSL4GIE_NOX_ENVDIR`` moves it (CI keeps it in ~/.cache).
"""

from __future__ import annotations

import hashlib
import os
import sys
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

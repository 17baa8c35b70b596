"""Users get the package, its docs, configs and examples, never the team's reference folder
beside the checkout: nothing shipped may point there."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]
SHIPPED = ("ssl4gie", "docs", "examples", "benchmarks", "README.md", "CONTRIBUTING.md")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".txt", ".cfg", ".sh"}


def _shipped_files() -> list[Path]:
    files: list[Path] = []
    for name in SHIPPED:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*"))
    return [
        f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES and "results" not in f.parts
    ]


def test_nothing_shipped_refers_to_the_reference_folder():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _shipped_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if "shared/" in line or "realdata" in line
    ]
    assert not offenders, f"cite the public source instead: {offenders}"


def test_the_scan_sees_the_package():
    names = {path.name for path in _shipped_files()}
    assert {"datasets.py", "dino_vitb16_hk.yaml", "datasets.md"} <= names

"""Download, on this machine, the wheels that ``pip install -e .[dev,bench]`` needs and the GPU
machine's image lacks, for CPython 3.12 on manylinux x86_64, into ``.whl/`` at the repository
root (git-ignored); ``run.sh`` installs them there with ``pip --no-index --no-deps``.

    python benchmarks/gpu/build_wheels.py [--extras dev,bench] [--out .whl] [--budget-mib 60]

1. pip resolves ssl4gie with the extras for the target (``pip install --dry-run --report``,
   wheels only, metadata only: nothing large is downloaded).
2. The resolved graph is walked from ssl4gie's own requirements, stopping at every distribution
   ``image-packages.txt`` lists (their needs are already met there): torch's CUDA wheels and
   the rest of the image are never carried.
3. One ``pip download --no-deps`` of the pinned missing wheels; the few needs published as
   source only (:data:`SOURCE_ONLY`) are built into wheels here first (pure Python).

Stale wheels in the folder are removed (two versions of one distribution stop the install).
Fails when the folder would exceed ``--budget-mib`` (the device tool carries 64 MiB in all,
the checkout included).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
IMAGE_PACKAGES = Path(__file__).with_name("image-packages.txt")
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip
TARGET = ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp"]
TARGET += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
# omegaconf 2.3 (hydra-core's, lightly's need) pins antlr4-python3-runtime 4.9.*, published on
# PyPI as a source distribution only.
SOURCE_ONLY = ("antlr4-python3-runtime==4.9.3",)
MARKERS = {
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.3",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def normalise(name: str) -> str:
    """PEP 503 name: ``Foo_Bar`` -> ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    """The normalised names :data:`IMAGE_PACKAGES` lists."""
    lines = IMAGE_PACKAGES.read_text().splitlines()
    return {normalise(line) for line in lines if line.strip() and not line.startswith("#")}


def pip(*args: str) -> None:
    """Run this interpreter's pip; stop on failure."""
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def resolve(extras: str, links: Path, report: Path) -> dict[str, dict]:
    """Normalised name -> the report entry of every distribution the target install needs."""
    pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
        *TARGET, "--find-links", str(links), "--target", str(report.parent / "unused"),
        f"{ROOT}[{extras}]")  # fmt: skip
    entries = json.loads(report.read_text())["install"]
    return {normalise(entry["metadata"]["name"]): entry for entry in entries}


def needs(entry: dict, extras: set[str]) -> list[Requirement]:
    """The requirements of a resolved distribution that apply on the target with ``extras``."""
    found = []
    for text in entry["metadata"].get("requires_dist") or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate(MARKERS | {"extra": e}) for e in extras | {""}):
            found.append(requirement)
    return found


def missing(resolved: dict[str, dict], extras: str, present: set[str]) -> dict[str, str]:
    """Name -> version of the distributions reached from ssl4gie without passing through one
    of ``present``."""
    queue = [("ssl4gie", set(extras.split(",")))]
    seen: dict[str, str] = {}
    while queue:
        name, wanted = queue.pop()
        for requirement in needs(resolved[name], wanted):
            key = normalise(requirement.name)
            if key in present or key in seen or key not in resolved:
                continue
            seen[key] = resolved[key]["metadata"]["version"]
            queue.append((key, set(requirement.extras)))
    return seen


def wheel_name(path: Path) -> str:
    """The normalised distribution name of a wheel file."""
    return normalise(path.name.split("-")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="dev,bench", help="ssl4gie's extras to carry")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl", help="the wheel folder")
    parser.add_argument("--budget-mib", type=float, default=60.0, help="largest folder size")
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "built"
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(built), *SOURCE_ONLY)
        resolved = resolve(args.extras, built, Path(tmp) / "report.json")
        wanted = missing(resolved, args.extras, image_packages())
        pinned = [f"{name}=={version}" for name, version in sorted(wanted.items())]
        pip("download", "--quiet", "--no-deps", *TARGET, "--find-links", str(built),
            "--dest", str(args.out), *pinned)  # fmt: skip
    keep = {f"{name}-{version}" for name, version in wanted.items()}
    for wheel in sorted(args.out.glob("*.whl")):
        version = wheel.name.split("-")[1]
        if f"{wheel_name(wheel)}-{version}" not in keep:
            print(f"removing stale {wheel.name}")
            wheel.unlink()
    wheels = sorted(args.out.glob("*.whl"))
    mib = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    print(f"{len(wheels)} wheels, {mib:.1f} MiB in {args.out}")
    if mib > args.budget_mib:
        raise SystemExit(f"{mib:.1f} MiB of wheels is over --budget-mib {args.budget_mib}")


if __name__ == "__main__":
    main()

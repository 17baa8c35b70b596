"""A one-time, cached index of the readable images under a folder.

**Scan.** Every file below ``root`` whose suffix is one of :data:`IMAGE_SUFFIXES` (any case).
Names starting with ``"."`` and ``__MACOSX`` folders (archive litter such as ``._x.jpg``) are
left out; symlinked files are followed, symlinked folders are not.

**Check.** Each file is checked once: PIL identifies it by content (not by suffix) and decodes a
reduced version: JPEGs at 1/8 scale through ``draft`` (DCT scaling, so truncation and broken
tables are caught at a fraction of a full decode), other formats in full. Zero-byte files,
non-images, truncated and structurally corrupt files fail. Entropy data that is damaged but
still decodes (garbage pixels) is not caught; such a file is replaced at training time if it
fails then. Files are checked on a thread pool (PIL releases the GIL while decoding).
Measured on one busy core: about 800 files/s for 600x500 JPEGs and 120 files/s for 1920x1080
ones, against 475 and 70 files/s for a full PIL decode.

**Cache.** ``<cache_dir>/<sha1 of the absolute root>.json`` (``cache_dir`` defaults to
``$XDG_CACHE_HOME/ssl4gie/index``, i.e. ``~/.cache/ssl4gie/index``), so read-only dataset roots
work. It stores each file's size, mtime (ns) and verdict. Invalidation rule: a verdict is reused
only while the file's size and mtime are unchanged; new or changed files are checked, vanished
files dropped. A repeat build therefore lists and stats the tree but decodes nothing. The cache
is written atomically and only when something changed.

**Bad files** are skipped with one warning that counts them and names a text file,
``<cache_dir>/<sha1>.bad.txt``, listing each (relative path, tab, reason).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from ssl4gie._io import atomic_file
from ssl4gie.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
CACHE_VERSION = 1
_DRAFT_SCALE = 8
_CHECK_THREADS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class FolderIndex:
    """The readable images under ``root``: ``files`` and ``bad_files`` are sorted relative
    POSIX paths; ``bad_list_path`` is the text file listing the bad ones (None if none)."""

    root: Path
    files: list[str]
    bad_files: list[str]
    bad_list_path: Path | None
    cache_path: Path

    def paths(self) -> list[Path]:
        """Absolute paths of the readable images, in ``files`` order."""
        return [self.root / name for name in self.files]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ssl4gie/index``, falling back to ``~/.cache/ssl4gie/index``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ssl4gie" / "index"


def check_image(path: str | os.PathLike) -> str:
    """Return ``""`` if ``path`` decodes (at reduced scale for JPEG), else the reason it fails."""
    try:
        with Image.open(path) as image:
            reduced = (max(1, image.width // _DRAFT_SCALE), max(1, image.height // _DRAFT_SCALE))
            image.draft("RGB", reduced)
            image.load()
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        return f"{type(err).__name__}: {err}".replace("\n", " ")
    return ""


def _scan(root: Path, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> Iterator[tuple[str, int, int]]:
    """Yield ``(relative path, size, mtime_ns)`` of every file under ``root`` whose suffix (any
    case) is one of ``suffixes``."""
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name == "__MACOSX":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif Path(entry.name).suffix.lower() in suffixes and entry.is_file():
                    stat = entry.stat()
                    relative = Path(entry.path).relative_to(root).as_posix()
                    yield relative, stat.st_size, stat.st_mtime_ns


def _load_cache(cache_path: Path, root: Path) -> dict[str, list]:
    """``{relative path: [size, mtime_ns, reason]}`` from a valid cache, else ``{}``."""
    try:
        cached = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        return {}
    if cached.get("version") != CACHE_VERSION or cached.get("root") != str(root):
        return {}
    return cached["files"]


def _check_all(root: Path, names: list[str], progress: bool) -> list[str]:
    """Reasons (``""`` for readable) for ``names``, checked on a thread pool."""
    with concurrent.futures.ThreadPoolExecutor(_CHECK_THREADS) as pool:
        reasons = pool.map(check_image, [root / name for name in names])
        quiet = not progress or not names  # a cached index checks nothing: no empty bar
        bar = tqdm(reasons, total=len(names), desc=f"indexing {root.name}", disable=quiet)
        return list(bar)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically; an unwritable cache folder only costs a log line."""
    try:
        with atomic_file(path) as handle:
            handle.write(text)
    except OSError as err:
        logger.warning("could not write %s: %s", path, err)


def _entries(root: Path, cache_path: Path, progress: bool) -> dict[str, list]:
    """``{relative path: [size, mtime_ns, reason]}`` for every candidate file, reusing cached
    verdicts of unchanged files, checking the rest and rewriting the cache if anything changed."""
    cached = _load_cache(cache_path, root)
    entries = {name: [size, mtime, None] for name, size, mtime in _scan(root)}
    for name, entry in entries.items():
        if cached.get(name, [None, None])[:2] == entry[:2]:
            entry[2] = cached[name][2]
    unchecked = sorted(name for name, entry in entries.items() if entry[2] is None)
    for name, reason in zip(unchecked, _check_all(root, unchecked, progress), strict=True):
        entries[name][2] = reason
    if unchecked or len(entries) != len(cached):
        payload = {"version": CACHE_VERSION, "root": str(root), "files": entries}
        _write_text(cache_path, json.dumps(payload))
    return entries


def _report_bad(
    root: Path, bad_list_path: Path, entries: dict[str, list], kind: str = "image file(s)"
) -> list[str]:
    """Write the list of bad files (or remove a stale one), warn once naming the first three
    with their reasons, return their names. Shared by the image and the video indexes."""
    bad_files = sorted(name for name, entry in entries.items() if entry[2])
    if not bad_files:
        with contextlib.suppress(OSError):
            bad_list_path.unlink()
        return bad_files
    _write_text(bad_list_path, "".join(f"{name}\t{entries[name][2]}\n" for name in bad_files))
    named = "; ".join(f"{name} ({entries[name][2]})" for name in bad_files[:3])
    more = f" and {len(bad_files) - 3} more" if len(bad_files) > 3 else ""
    warnings.warn(
        f"skipped {len(bad_files)} unreadable {kind} under {root}: {named}{more}; "
        f"their list is in {bad_list_path}",
        stacklevel=3,
    )
    return bad_files


def build_index(
    root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> FolderIndex:
    """Index the images under ``root``, checking only files the cache does not vouch for.

    Raises :class:`~ssl4gie.errors.InputError` if ``root`` is not a folder. Warns once if
    unreadable files were skipped.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"image folder {root} does not exist; pass the folder holding the images")
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    key = hashlib.sha1(str(root).encode()).hexdigest()
    cache_path = cache_dir / f"{key}.json"
    entries = _entries(root, cache_path, progress)
    bad_list_path = cache_dir / f"{key}.bad.txt"
    bad_files = _report_bad(root, bad_list_path, entries)
    files = sorted(name for name, entry in entries.items() if not entry[2])
    return FolderIndex(root, files, bad_files, bad_list_path if bad_files else None, cache_path)

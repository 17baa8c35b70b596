"""Atomic writes, leftovers of killed runs, and the checks made before writing a lot.

Everything ssl4gie writes that a later step reads (generated datasets, index caches, exported
backbones) is first written under a temporary name beside its destination,
``.<name>.tmp-<pid>-<random>``, and renamed into place only when complete, so an interrupted
run leaves either the old state or the new one. An exception, Ctrl-C (SIGINT) or SIGTERM (the
``ssl4gie`` command turns it into :class:`SystemExit`, except for ``pretrain``/``finetune``,
where Lightning stops at the end of a step) removes the temporary copy; a SIGKILLed
run cannot, so the next write to the same destination removes temporaries whose process is gone
and says so in one warning.

Commands that write a lot call :func:`check_free_space` with their estimate and
:func:`check_writable` on the destination before they start.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssl4gie.errors import InputError

_LEFTOVER = re.compile(r"\.tmp-(\d+)-")


def _prefix(final: Path) -> str:
    """Temporary names beside ``final``: ``.<name>.tmp-<pid>-`` (the pid tells live from dead)."""
    return f".{final.name}.tmp-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_leftovers(final: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed runs left beside ``final``; return what was removed.

    A temporary ``.<name>.tmp-<pid>-*`` is a leftover when process ``pid`` no longer runs, so
    concurrent writers on one machine keep theirs (on a shared file system, write one
    destination from one machine at a time). Each removal is one warning naming the path; a
    leftover that cannot be removed (another user's) is left as it is.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    removed = []
    for path in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        match = _LEFTOVER.match(path.name[len(final.name) + 1 :])
        if match and _process_alive(int(match.group(1))):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
        removed.append(path)
        warnings.warn(f"removed {path}, left by an interrupted run", stacklevel=4)
    return removed


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder that is renamed to ``final`` when the block succeeds.

    ``final`` must not exist, or be an empty folder (which is replaced). On error, Ctrl-C or
    SIGTERM the temporary folder is removed and ``final`` is left as it was; leftovers of
    killed runs are removed first (:func:`remove_leftovers`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(final), dir=final.parent))
    try:
        yield tmp
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary file beside ``final`` for writing; rename it over ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(final), dir=final.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def existing_ancestor(path: str | os.PathLike) -> Path:
    """``path`` itself if it exists, else its nearest existing parent folder."""
    path = Path(path).expanduser().absolute()
    return next(p for p in (path, *path.parents) if p.exists())


def check_writable(path: str | os.PathLike, what: str) -> Path:
    """Raise :class:`InputError` unless files can be created at ``path`` (made or not yet).

    Probes the nearest existing folder by creating and removing a temporary folder in it.
    ``what`` names the thing for the message, e.g. ``"--root"``. Returns that folder.
    """
    ancestor = existing_ancestor(path)
    if not ancestor.is_dir():
        raise InputError(f"{what} {path} lies inside the file {ancestor}: choose a folder path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ssl4gie-probe-", dir=ancestor))
    except OSError as err:
        raise InputError(
            f"{what}: cannot write in {ancestor} ({err.strerror}); choose a writable folder"
        ) from None
    return ancestor


def format_bytes(count: float) -> str:
    """``1536`` -> ``'1.5 KiB'`` (binary units, as ``df -h``)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while abs(count) >= 1024 and power < len(units) - 1:
        count, power = count / 1024, power + 1
    return f"{count:.0f} B" if power == 0 else f"{count:.1f} {units[power]}"


def check_free_space(dest: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Raise :class:`InputError` when ``needed_bytes`` exceed the free space at ``dest``.

    ``dest`` need not exist yet: the free space of its nearest existing folder counts (as
    ``shutil.disk_usage``). ``what`` names the write for the message, e.g.
    ``"data synth --n 1000000"``; the message gives both figures.

    >>> check_free_space(".", 1, "one byte")
    """
    ancestor = existing_ancestor(dest)
    free = shutil.disk_usage(ancestor).free
    if needed_bytes > free:
        raise InputError(
            f"{what} would write about {format_bytes(needed_bytes)} but {ancestor} has "
            f"{format_bytes(free)} free; write less or choose a destination with more space"
        )


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The content of the YAML file ``path``; ``what`` names it in errors (e.g. ``"--config"``).

    A missing file, a binary file or a syntax error is one :class:`InputError` naming the file,
    and for a syntax error the line and column (PyYAML's own message names ``<unicode string>``).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; give the path of a YAML file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not a text file; give a YAML file") from None
    except yaml.YAMLError as err:
        raise InputError(f"{what} {path}{_yaml_problem(err)}; fix the file there") from None


def _yaml_problem(err) -> str:
    """``", line 5, column 1: YAML syntax error (expected ...)"`` from a PyYAML error."""
    mark, context = getattr(err, "problem_mark", None), getattr(err, "context", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context_mark = getattr(err, "context_mark", None)
    if context and context_mark:
        problem = f"{context} from line {context_mark.line + 1}: {problem}"
    return f"{where}: YAML syntax error ({problem})"

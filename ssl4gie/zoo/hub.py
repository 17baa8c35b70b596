"""Hub and upstream I/O: cache-first downloads that fail fast, sha256 checks, publishing.

Everything goes through ``huggingface_hub`` (as timm's ``_hub.py``), with the
environment read at call time rather than at import: ``HF_HUB_CACHE`` / ``HF_HOME`` choose the
cache, ``HF_ENDPOINT`` a mirror, ``HF_HUB_OFFLINE=1`` forbids the network.

* A cached file is used straight from the cache, without a network round trip (a warm
  ``load_backbone`` takes well under a second). Pin ``revision`` to a commit sha to be sure what
  you get; a cached ``main`` is not refreshed.
* A file that is not cached, when offline or with the endpoint unreachable, fails within about
  a second with the repo id and how to fetch or place the file (huggingface_hub alone retries
  for ~23 s).
* Only ``model.safetensors`` and ``config.json`` are fetched from the Hub: nothing downloaded
  is ever unpickled.
* :func:`publish` refuses weights whose card forbids sharing them (a no-derivatives or unknown
  licence, a data-use agreement: :func:`ssl4gie.zoo.cards.publish_refusal`) unless the user
  states a permission, which the published model card then records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ssl4gie._io import atomic_file
from ssl4gie.errors import InputError

MODEL_FILES = ("config.json", "model.safetensors")
PROBE_TIMEOUT_S = 1.0


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (``~/.cache/huggingface``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    default_home = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return Path(os.environ.get("HF_HOME") or default_home).expanduser() / "hub"


def ssl4gie_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ssl4gie/zoo`` (``~/.cache/ssl4gie/zoo``): converted upstream weights."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ssl4gie" / "zoo"


def endpoint() -> str:
    """The Hub endpoint: ``$HF_ENDPOINT`` (a mirror) or huggingface_hub's default."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def is_offline() -> bool:
    """True if ``HF_HUB_OFFLINE`` is set now (or was when huggingface_hub was imported)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def split_repo(repo: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; ``"org/name"`` -> ``("org/name", None)``."""
    repo_id, _, revision = repo.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InputError(f"hub repo {repo!r} must look like 'org/name' or 'org/name@revision'")
    return repo_id, revision or None


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` (DNS included)."""
    import socket

    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _fetch_hint(repo_id: str, revision: str | None, cache: Path) -> str:
    revision_flag = f" --revision {revision}" if revision else ""
    return (
        f"fetch it on a machine with internet (hf download {repo_id}{revision_flag} "
        f"--include {' '.join(MODEL_FILES)}) and copy the cache folder "
        f"{cache / ('models--' + repo_id.replace('/', '--'))}, or point HF_ENDPOINT at a mirror"
    )


def download_repo_files(
    repo_id: str,
    filenames: tuple[str, ...] = MODEL_FILES,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Folder (the cached snapshot) holding ``filenames`` of ``repo_id`` at ``revision``.

    Cache first; otherwise downloads with huggingface_hub, failing within ~1 s when offline or
    when the endpoint cannot be reached.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    cache = hub_cache_dir(cache_dir)
    options = {"repo_id": repo_id, "revision": revision, "cache_dir": cache}
    try:
        paths = [
            hf_hub_download(filename=name, local_files_only=True, **options) for name in filenames
        ]
        return Path(paths[0]).parent
    except EntryNotFoundError:
        pass
    where = f"{repo_id}" + (f"@{revision}" if revision else "")
    if is_offline():
        raise InputError(
            f"{where} is not in the Hub cache {cache} and HF_HUB_OFFLINE is set; "
            + _fetch_hint(repo_id, revision, cache)
        )
    if not _reachable(endpoint()):
        raise InputError(
            f"{where} is not in the Hub cache {cache} and {endpoint()} cannot be reached; "
            + _fetch_hint(repo_id, revision, cache)
        )
    try:
        paths = [
            hf_hub_download(filename=name, endpoint=endpoint(), **options) for name in filenames
        ]
    except (HfHubHTTPError, EntryNotFoundError) as err:
        raise InputError(f"could not download {filenames} from {where}: {err}") from err
    return Path(paths[0]).parent


def download_index(repo: str, candidates: tuple[str, ...], revision: str | None = None) -> Path:
    """Path of the first of ``candidates`` (e.g. ``zoo.toml``) found in Hub repo ``repo``."""
    repo_id, pinned = split_repo(repo)
    for name in candidates:
        try:
            return download_repo_files(repo_id, (name,), revision or pinned) / name
        except InputError:
            continue
    raise InputError(f"no zoo index ({', '.join(candidates)}) could be read from {repo}")


def sha256_of(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, destination: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``destination`` (atomically) and check its sha256 when given.

    Fails within ~1 s when offline or when the host cannot be reached, with the URL and where to
    place the file by hand.
    """
    hint = f"download {url} yourself and place it at {destination}"
    if not destination.is_file():
        if is_offline():
            raise InputError(f"HF_HUB_OFFLINE is set, so ssl4gie will not download; {hint}")
        if not _reachable(url):
            raise InputError(f"{urlparse(url).netloc} cannot be reached; {hint}")
        with (
            urllib.request.urlopen(url, timeout=30) as response,
            atomic_file(destination, "wb") as out,
        ):
            shutil.copyfileobj(response, out, 1 << 20)
    if sha256 is not None and (found := sha256_of(destination)) != sha256:
        destination.unlink()
        raise InputError(f"{url} has sha256 {found}, but its card records {sha256}; not used")
    return destination


def commit_operations(folder: str | os.PathLike, permission: str | None = None) -> list:
    """The ``CommitOperationAdd`` list that publishing ``folder`` sends: every file, sorted.

    With ``permission``, the ``README.md`` sent ends with a section recording it (the folder's
    own file is left as it is).
    """
    from huggingface_hub import CommitOperationAdd

    folder = Path(folder)
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    operations = []
    for path in files:
        name = path.relative_to(folder).as_posix()
        content = path
        if permission and name == "README.md":
            content = _with_permission(path.read_text(encoding="utf-8"), permission).encode()
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    return operations


def _with_permission(readme: str, permission: str) -> str:
    return (
        f"{readme.rstrip()}\n\n## Permission to publish\n\nThe licence of these weights does not "
        f"let anyone share them; the publisher states this permission: {permission.strip()}\n"
    )


def publish_check(folder: Path, permission: str | None) -> None:
    """Raise :class:`InputError` naming the licence if the folder's weights may not be shared
    and no ``permission`` is given (see :func:`ssl4gie.zoo.cards.publish_refusal`)."""
    from ssl4gie.zoo.cards import WeightsCard, publish_refusal

    entry = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("ssl4gie") or {}
    card = WeightsCard.from_dict(entry["card"]) if entry.get("card") else None
    refusal = publish_refusal(card, own_weights=entry.get("source_format") == "lightning")
    if refusal and not (permission and permission.strip()):
        raise InputError(
            f"ssl4gie will not publish {folder}: {refusal}; keep it in your cache, or, if the "
            "rights holder allows it, pass --i-have-permission '<who allowed it and how>' "
            "(recorded in the model card)"
        )


def publish(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    permission: str | None = None,
):
    """Upload an export folder to the Hub; return the commit URL, or with ``dry_run`` the
    operations that would be sent (nothing is contacted).

    Weights whose card forbids sharing them are refused (:class:`InputError` naming the
    licence) unless ``permission`` says who allowed it; the model card sent records it. The
    token comes from ``token`` or the usual HF environment / credential store.

    Examples:
        >>> operations = publish("out/resnet50-dino-colon", "our-lab/resnet50-dino-colon",
        ...                      dry_run=True)  # doctest: +SKIP
        >>> [operation.path_in_repo for operation in operations]  # doctest: +SKIP
        ['README.md', 'config.json', 'model.safetensors']
    """
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        raise InputError(f"{folder} is not an export folder (model.safetensors + config.json)")
    publish_check(folder, permission)
    operations = commit_operations(folder, permission)
    if dry_run:
        return operations
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint(), token=token, library_name="ssl4gie")
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo.repo_id, branch=revision, exist_ok=True)
    commit = api.create_commit(
        repo.repo_id,
        operations=operations,
        commit_message=f"Upload {folder.name} with ssl4gie",
        revision=revision,
    )
    return commit.commit_url

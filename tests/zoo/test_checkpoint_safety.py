"""Reading checkpoints safely: a pickle that carries code is refused before anything from it runs
or anything is written, in every container and through every entry point. (Files that are not
checkpoints, and corrupt safetensors: tests/zoo/test_convert_messages.py.)"""

from __future__ import annotations

import argparse
import pickle

import pytest
import torch

from ssl4gie.cli import main
from ssl4gie.errors import InputError
from ssl4gie.zoo.convert import FORMATS, read_checkpoint
from ssl4gie.zoo.load import load_backbone

from .conftest import RunsCode


def _writers():
    """How a pickle reaches disk: torch's zip format, its legacy format, a bare pickle."""

    def legacy(obj, path):
        torch.save(obj, path, _use_new_zipfile_serialization=False)

    def bare(obj, path):
        with open(path, "wb") as handle:
            pickle.dump(obj, handle)

    return {"zip": torch.save, "legacy": legacy, "bare": bare}


WRITERS = _writers()
SUFFIXES = (".pth", ".ckpt", ".bin", ".torch", ".pt")


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(RunsCode(marker)))  # what full unpickling would do
    assert marker.exists()


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_pickle_with_code_is_refused_before_it_runs(tmp_path, writer, suffix):
    marker = tmp_path / "ran"
    path = tmp_path / f"evil{suffix}"
    WRITERS[writer]({"state_dict": {"w": torch.zeros(1)}, "x": RunsCode(marker)}, path)
    with pytest.raises(InputError, match="needs full unpickling") as raised:
        read_checkpoint(path)
    assert not marker.exists()
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_code_inside_an_allowed_namespace_is_still_refused(tmp_path):
    marker = tmp_path / "ran"
    args = argparse.Namespace(lr=1.5e-3, hook=RunsCode(marker))  # EndoViT-style args, trapped
    torch.save({"model": {"w": torch.zeros(1)}, "args": args}, tmp_path / "endovit.pth")
    with pytest.raises(InputError, match=r"posix\.system|os\.system"):
        read_checkpoint(tmp_path / "endovit.pth")
    assert not marker.exists()


def test_a_plain_namespace_is_allowed(tmp_path):
    args = argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75)
    torch.save({"model": {"w": torch.ones(2)}, "args": args}, tmp_path / "endovit.pth")
    loaded = read_checkpoint(tmp_path / "endovit.pth")
    assert loaded["args"].mask_ratio == 0.75 and torch.equal(loaded["model"]["w"], torch.ones(2))


@pytest.mark.parametrize("fmt", [*FORMATS, "detected"])
def test_every_format_refuses_it_from_the_cli_and_writes_nothing(tmp_path, capsys, fmt):
    marker = tmp_path / "ran"
    torch.save({"model": {"w": torch.zeros(1)}, "x": RunsCode(marker)}, tmp_path / "evil.pth")
    out = tmp_path / "out"
    argv = ["zoo", "export", str(tmp_path / "evil.pth"), str(out)]
    if fmt != "detected":
        argv = ["zoo", "convert", "--format", fmt, str(tmp_path / "evil.pth"), str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "needs full unpickling" in error and len(error.strip().splitlines()) == 1
    assert not marker.exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pth"]


def test_load_backbone_refuses_it_too(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"x": RunsCode(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(InputError, match="needs full unpickling"):
        load_backbone(tmp_path / "evil.ckpt")
    assert not marker.exists()

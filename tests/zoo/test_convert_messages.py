"""Every way reading or converting a checkpoint can fail, with its whole message: one line that
names the file or entry and says what to do. A pickle that carries code is named by what it
imports, whether torch's own refusal names it or ssl4gie has to read the opcodes itself (an
opcode torch does not know, or another torch version's wording)."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ssl4gie.cli import main
from ssl4gie.errors import InputError
from ssl4gie.zoo.convert import (
    FORMATS,
    convert_checkpoint,
    convert_file,
    detect_architecture,
    detect_format,
    read_checkpoint,
)

from .conftest import RunsCode

NOT_A_CHECKPOINT = (
    "{path} is not a checkpoint ({looks}): expected a file written by torch.save or a "
    ".safetensors file; check the path, or download the file again if it was cut short"
)
REFUSED = (
    "{path} needs full unpickling (its pickle imports {imported}), which could run code, so "
    "ssl4gie refused it before running anything; if you trust the file, re-save only its "
    "tensors (torch.save(model.state_dict()))"
)


def _message(call) -> str:
    with pytest.raises(InputError) as raised:
        call()
    return str(raised.value)


def _zip_bytes(tmp_path) -> bytes:
    torch.save({"w": torch.zeros(64)}, tmp_path / "good.pth")
    return (tmp_path / "good.pth").read_bytes()


def _bare_pickle_bytes() -> bytes:
    return pickle.dumps({"epoch": 3, "lr": [0.1, 0.2]}, protocol=2)


NOT_CHECKPOINTS = {
    "empty": (lambda tmp: b"", "it is empty"),
    "text": (lambda tmp: b"model: resnet50\n\tepochs: 100\r\n", "it is a text file"),
    "text-with-delete": (lambda tmp: b"model: resnet50\x7f", "unrecognised bytes"),
    "binary": (lambda tmp: b"\x07\x00\xff" * 100, "unrecognised bytes"),
    "truncated-zip": (lambda tmp: _zip_bytes(tmp)[:300], "a damaged or truncated zip archive"),
    "truncated-pickle": (
        lambda tmp: _bare_pickle_bytes()[:-4],
        "a pickle, but not one written by torch.save",
    ),
}


@pytest.mark.parametrize("kind", NOT_CHECKPOINTS)
@pytest.mark.parametrize("suffix", [".pth", ".ckpt"])
def test_a_file_that_is_not_a_checkpoint_says_what_it_looks_like(tmp_path, capsys, kind, suffix):
    make, looks = NOT_CHECKPOINTS[kind]
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(make(tmp_path))
    expected = NOT_A_CHECKPOINT.format(path=path, looks=looks)
    assert _message(lambda: read_checkpoint(path)) == expected
    out = tmp_path / "out"
    assert main(["zoo", "convert", "--format", "torchvision", str(path), str(out)]) == 2
    assert expected in capsys.readouterr().err and not out.exists()


def test_a_file_that_cannot_be_read_folder_or_missing_is_named(tmp_path, monkeypatch):
    path = tmp_path / "weights.pth"
    assert _message(lambda: read_checkpoint(tmp_path)) == (
        f"checkpoint {tmp_path} is a folder; give the checkpoint file inside it"
    )
    assert _message(lambda: read_checkpoint(path)) == f"checkpoint {path} does not exist"
    torch.save({"w": torch.zeros(1)}, path)
    monkeypatch.setattr(os, "access", lambda *args: False)  # tests run as root: chmod can't
    assert _message(lambda: read_checkpoint(path)) == (
        f"checkpoint {path} cannot be read (no permission); check its mode"
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_safetensors_file_names_itself_and_the_fix(tmp_path, damage):
    save_file({"w": torch.zeros(64)}, tmp_path / "good.safetensors")
    good = (tmp_path / "good.safetensors").read_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not json at all" * 4 if damage == "garbage" else good[:20])
    message = _message(lambda: read_checkpoint(path))
    assert message.startswith(f"{path} has a corrupt safetensors header or is truncated (")
    assert message.endswith("); download or export the file again") and "\n" not in message


@pytest.mark.parametrize("protocol", [2, 4])
def test_torchs_refusal_is_named_by_the_import(tmp_path, protocol):
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"x": RunsCode(marker)}, protocol=protocol))
    expected = REFUSED.format(path=path, imported="posix.system")
    assert _message(lambda: read_checkpoint(path)) == expected and not marker.exists()


def test_an_opcode_torch_does_not_know_is_still_named_by_its_import(tmp_path):
    # protocol 2, then INST (a protocol-0 opcode): torch says only "Unsupported operand 105"
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    command = f"touch {marker}".encode()
    length = len(command).to_bytes(4, "little")
    path.write_bytes(b"\x80\x02(X" + length + command + b"ios\nsystem\n.")
    expected = REFUSED.format(path=path, imported="os.system")
    assert _message(lambda: read_checkpoint(path)) == expected and not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4], ids=["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("tensor_first", [True, False], ids=["after-a-tensor", "alone"])
def test_the_import_is_read_from_the_opcodes_whatever_torchs_wording(
    tmp_path, monkeypatch, protocol, tensor_first
):
    """torch's message without "GLOBAL <name>": the opcodes name the import; torch's own
    rebuild functions and OrderedDict, which every tensor pickle imports, are passed over."""
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    checkpoint = {"w": torch.zeros(2), "x": RunsCode(marker)} if tensor_first else RunsCode(marker)
    path.write_bytes(pickle.dumps(checkpoint, protocol=protocol))

    def reworded(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed: unsupported class")

    monkeypatch.setattr(torch, "load", reworded)
    expected = REFUSED.format(path=path, imported="posix.system")
    assert _message(lambda: read_checkpoint(path)) == expected and not marker.exists()


def test_a_checkpoint_that_is_not_a_dict_or_holds_no_tensor_is_named(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    assert _message(lambda: convert_file(path)) == f"{path} holds a list, not a checkpoint dict"
    not_tensor = {"model": {"cls_token": torch.zeros(1), "pos_embed": 3}}
    assert _message(lambda: convert_checkpoint(not_tensor, "mae")) == (
        "mae checkpoint entry 'pos_embed' is not a tensor"
    )


def test_a_lightning_checkpoint_without_a_backbone_is_named():
    without_name = {"state_dict": {}, "hyper_parameters": {"lr": 0.1}}
    assert _message(lambda: convert_checkpoint(without_name)) == (
        "this Lightning checkpoint has no 'backbone' hyperparameter"
    )
    without_weights = {
        "state_dict": {"projector.0.weight": torch.zeros(1)},
        "hyper_parameters": {"backbone": "resnet18"},
    }
    assert _message(lambda: convert_checkpoint(without_weights)) == (
        "this Lightning checkpoint holds no 'backbone.*' weights"
    )


def test_an_unknown_format_or_architecture_lists_what_is_known():
    keys = {key: torch.zeros(1) for key in ("g", "f", "e", "d", "c", "b", "a")}
    assert _message(lambda: detect_format(keys)) == (
        "cannot tell the format of a checkpoint with keys ['a', 'b', 'c', 'd', 'e']; give it: "
        + ", ".join(FORMATS)
    )
    assert _message(lambda: convert_checkpoint(keys, "moco3")) == (
        "unknown checkpoint format 'moco3' (did you mean 'mocov3', 'ssl4gie-mocov3'?); "
        "choose one of: " + ", ".join(FORMATS)
    )
    assert _message(lambda: detect_architecture({"layer1.0.conv1.weight": torch.zeros(1)})) == (
        "cannot tell the architecture of this state dict (known: timm resnet18-152 and "
        "ViT-Ti/S/B/L); give architecture='<timm name>'"
    )

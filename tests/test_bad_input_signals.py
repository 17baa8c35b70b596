"""Interrupted writes leave nothing behind; a killed run's leftovers are removed by the next.

Ctrl-C (SIGINT) and SIGTERM are sent to real ``ssl4gie`` processes while they write (synth,
export, convert); the output root must then hold exactly what it held before. SIGKILL cannot be
caught: its temporary folder stays until the next write to the same destination removes it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssl4gie._io import atomic_dir, check_free_space, format_bytes, remove_leftovers
from ssl4gie.errors import InputError

# The real command, with the export's last step (the README) held for a minute, so a signal
# reliably lands while the weights are written in the temporary folder.
SLOW_EXPORT = """
import sys, time
import ssl4gie.zoo.export as export
render = export.render_readme
export.render_readme = lambda *args: (time.sleep(60), render(*args))[1]
from ssl4gie.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start(argv: list[str], code: str = "from ssl4gie.cli import main; import sys; "
          "sys.exit(main(sys.argv[1:]))") -> subprocess.Popen:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def wait_for_temporary(root: Path, holding: str, process: subprocess.Popen) -> Path:
    """The ``.<name>.tmp-*`` folder under ``root`` once it holds a file matching ``holding``."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for tmp in root.glob(".*.tmp-*"):
            if any(tmp.rglob(holding)):
                return tmp
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.02)
    process.kill()
    raise AssertionError("the command never started writing")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    import timm

    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), path)
    return str(path)


SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}


@pytest.mark.parametrize("name", SIGNALS)
def test_interrupted_synth_leaves_nothing(name, tmp_path):
    (tmp_path / "kept.txt").write_text("was here")
    argv = ["data", "synth", "--layout", "kvasir-seg", "--root", str(tmp_path / "out"),
            "--n", "100000", "--size", "64", "--quiet"]  # fmt: skip
    process = start(argv)
    wait_for_temporary(tmp_path, "*.jpg", process)
    number, code = SIGNALS[name]
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert len(err.strip().splitlines()) <= 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "name"), [("export", "SIGINT"), ("convert", "SIGTERM")])
def test_interrupted_export_and_convert_leave_nothing(command, name, tmp_path, checkpoint):
    (tmp_path / "kept.txt").write_text("was here")
    fmt = ["--format", "torchvision"] if command == "convert" else []
    process = start(["zoo", command, *fmt, checkpoint, str(tmp_path / "out")], SLOW_EXPORT)
    wait_for_temporary(tmp_path, "model.safetensors", process)
    number, code = SIGNALS[name]
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_a_killed_synth_is_cleaned_by_the_next_run_in_one_warning(tmp_path):
    from ssl4gie.data.synthetic import synthesize

    argv = ["data", "synth", "--layout", "kvasir-seg", "--root", str(tmp_path / "out"),
            "--n", "100000", "--size", "64", "--quiet"]  # fmt: skip
    process = start(argv)
    leftover = wait_for_temporary(tmp_path, "*.jpg", process)
    process.kill()
    process.communicate(timeout=60)
    assert leftover.is_dir()  # SIGKILL cannot be caught
    with pytest.warns(UserWarning) as caught:
        synthesize("kvasir-seg", tmp_path / "out", n=1, size=64, progress=False)
    assert [str(w.message) for w in caught] == [f"removed {leftover}, left by an interrupted run"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_command_says_it_removed_a_leftover_in_one_line(tmp_path):
    leftover = tmp_path / f".out.tmp-{2**22 + 1}-abc"  # above Linux's pid_max default (2**22)
    (leftover / "images").mkdir(parents=True)
    argv = ["data", "synth", "--layout", "kvasir-seg", "--root", str(tmp_path / "out"),
            "--n", "1", "--size", "64", "--quiet"]  # fmt: skip
    process = start(argv)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert err == f"ssl4gie data: warning: removed {leftover}, left by an interrupted run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_live_processes_are_kept(tmp_path):
    live = tmp_path / f".out.tmp-{os.getpid()}-abc"
    live.mkdir()
    dead = tmp_path / f".out.tmp-{2**22 + 1}-abc"  # above Linux's pid_max default (2**22)
    dead.mkdir()
    old_style = tmp_path / ".out.tmp-k2j3h4"  # named before temporaries carried the pid
    old_style.write_text("x")
    other = tmp_path / ".output.tmp-1-abc"
    other.mkdir()
    with pytest.warns(UserWarning, match="left by an interrupted run"):
        removed = remove_leftovers(tmp_path / "out")
    assert sorted(removed) == sorted([dead, old_style])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_leftover_that_cannot_be_removed_is_left_quietly(tmp_path, monkeypatch):
    (tmp_path / f".out.tmp-{2**22 + 1}-abc").mkdir()

    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ssl4gie._io.shutil.rmtree", refuse)
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "done.txt").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".out.tmp-{2**22 + 1}-abc", "out"]


def test_atomic_dir_removes_its_temporary_on_an_exception_and_names_it_with_the_pid(tmp_path):
    seen = []
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "out") as tmp:
        seen.append(tmp.name)
        (tmp / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt
    assert re.fullmatch(rf"\.out\.tmp-{os.getpid()}-\w+", seen[0])
    assert list(tmp_path.iterdir()) == []


def test_check_free_space_names_both_figures(tmp_path, monkeypatch):
    usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr("ssl4gie._io.shutil.disk_usage", lambda path: usage(2**40, 0, 3 * 2**30))
    check_free_space(tmp_path / "new" / "deeper", 3 * 2**30, "all of it")  # fits: no error
    with pytest.raises(InputError) as info:
        check_free_space(tmp_path / "new", 3 * 2**30 + 1, "the test")
    assert str(info.value) == (
        f"the test would write about 3.0 GiB but {tmp_path} has 3.0 GiB free; write less or "
        "choose a destination with more space"
    )


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 2**30, "5.0 GiB"),
        (3 * 2**50, "3072.0 TiB"),
    ],
)
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_synth_estimate_is_within_a_quarter_of_what_it_writes(tmp_path):
    from ssl4gie.data.synthetic import LAYOUTS, synthesize
    from ssl4gie.data.synthetic.layouts import estimated_bytes

    for layout in LAYOUTS:
        root = synthesize(layout, tmp_path / layout, n=4, size=64, seed=1, progress=False)
        written = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
        assert 0.8 < estimated_bytes(layout, 4, 64) / written < 1.25, (layout, written)

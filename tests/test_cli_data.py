"""``ssl4gie data``: the synth subcommand, its usage errors, and the installed entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ssl4gie.cli import main


def test_synth_writes_the_layout_and_says_where(tmp_path, capsys):
    root = tmp_path / "Kvasir-SEG"
    options = ["--layout", "kvasir-seg", "--root", str(root), "--n", "3", "--size", "64"]
    code = main(["data", "synth", *options, "--seed", "1", "--quiet"])
    assert code == 0
    assert len(list((root / "images").glob("*.jpg"))) == 3
    assert (root / "kavsir_bboxes.json").is_file()
    out = capsys.readouterr().out
    assert "3 synthetic frames" in out and str(root) in out


def test_synth_runs_as_a_command(tmp_path):
    root = tmp_path / "C3VD"
    command = [sys.executable, "-m", "ssl4gie.cli", "data", "synth", "--layout", "c3vd"]
    command += ["--root", str(root), "--n", "2", "--size", "64"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (root / "cecum_t1_a").iterdir()) == [
        "0000_color.png",
        "0000_depth.tiff",
        "0001_color.png",
        "0001_depth.tiff",
    ]


def test_synth_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "synth", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert all(option in help_text for option in ("--layout", "--root", "--n", "--size", "--seed"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layout", "kvasir-sg"], "did you mean 'kvasir-seg'"),
        (["--n", "0"], "n must be an integer >= 1"),
        (["--n", "many"], "argument --n: invalid int value"),
        (["--size", "16"], "size must be an integer >= 64"),
        (["--root", "{tmp}/full"], "is not empty"),
        (["--root", "{tmp}/file.txt"], "is a file"),
        (["--root", "{tmp}/file.txt/sub"], "lies inside the file"),
        (["--wat", "1"], "unrecognized arguments: --wat"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, options, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    (tmp_path / "file.txt").write_text("x")
    before = sorted(tmp_path.rglob("*"))
    flags = {"--layout": "kvasir-seg", "--root": str(tmp_path / "out"), "--n": "2"}
    flags.update(zip(options[::2], options[1::2], strict=True))
    argv = [part.format(tmp=tmp_path) for pair in flags.items() for part in pair]
    code = main(["data", "synth", *argv, "--quiet"])
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("ssl4gie data: error: ")
    assert message in stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_data_without_a_subcommand_is_a_usage_error(capsys):
    assert main(["data"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "--help" in stderr


def test_index_reports_bad_files(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    main(["data", "synth", "--layout", "hyperkvasir-unlabeled", "--root", str(tmp_path / "hk"),
          "--n", "3", "--size", "64", "--quiet"])  # fmt: skip
    for image in (tmp_path / "hk" / "unlabeled-images" / "images").iterdir():
        image.rename(folder / image.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="1 unreadable"):
        assert main(["data", "index", str(folder), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "3 readable images" in out and "1 unreadable files skipped" in out
    bad_list = next((tmp_path / "cache").glob("*.bad.txt")).read_text()
    assert "broken.jpg" in bad_list


def test_show_views_saves_a_grid_png(synthetic, tmp_path, capsys):
    from PIL import Image

    root = synthetic("hyperkvasir-unlabeled", n=8)
    out = tmp_path / "views.png"
    argv = ["data", "show-views", "--recipe", "dino", "--root", str(root),
            "--layout", "hyperkvasir-unlabeled", "--out", str(out), "--n", "2",
            "--max-size", "64", "--view-size", "48", "--fov"]  # fmt: skip
    assert main(argv) == 0
    assert "2 images and 10 dino views each" in capsys.readouterr().out
    with Image.open(out) as png:
        width, height = png.size
    assert width > 5 * height  # one row per image, 11 columns


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipe", "dinno"], "unknown recipe 'dinno' (did you mean 'dino'?)"),
        (["--recipe", "byol", "--n", "0"], "--n must be >= 1"),
        (["--recipe", "byol", "--layout", "kvasir"], "unknown dataset layout 'kvasir'"),
    ],
)
def test_show_views_bad_input(tmp_path, capsys, argv, message):
    base = ["data", "show-views", "--root", str(tmp_path), "--out", str(tmp_path / "x.png")]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()


def write_smooth_images(folder, count: int, seed: int) -> list:
    """Save ``count`` random smooth 64 px RGB images as PNG; return their paths."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 256, (count, 3, 6, 6), generator=generator).float()
    images = F.interpolate(coarse, size=(64, 64), mode="bicubic").clamp(0, 255).byte()
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"scene{i}.png")
        Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy())).save(paths[-1])
    return paths


def test_duplicates_groups_copies_and_writes_csv_and_sheet(tmp_path, capsys):
    import csv
    import shutil

    paths = write_smooth_images(tmp_path / "frames", 4, seed=0)
    shutil.copy(paths[1], tmp_path / "frames" / "scene1 copy, again.png")  # comma: quoted
    out, sheet = tmp_path / "out" / "groups.csv", tmp_path / "sheet.png"
    argv = ["data", "duplicates", str(tmp_path / "frames"), "--out", str(out)]
    assert main([*argv, "--png", str(sheet), "--size", "64", "--quiet"]) == 0
    with out.open(newline="") as handle:
        group_of = {row["path"].rsplit("/", 1)[-1]: row["group"] for row in csv.DictReader(handle)}
    assert len(group_of) == 5
    assert group_of["scene1.png"] == group_of["scene1 copy, again.png"]
    assert len(set(group_of.values())) == 4
    assert sheet.read_bytes().startswith(b"\x89PNG")
    assert not list((tmp_path / "out").glob(".*tmp*"))  # written by rename, no leftovers
    assert "5 images in 4 groups (largest 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["{tmp}/missing"], "folder {tmp}/missing does not exist"),
        (["{tmp}/frames", "--layout", "kvasir-sg"], "did you mean 'kvasir-seg'"),
        (["{tmp}/frames", "--threshold", "3"], "threshold 3.0 must lie in [0, 2)"),
        (["{tmp}/frames", "--size", "big"], "argument --size: invalid int value"),
    ],
)
def test_duplicates_bad_input_is_one_line_exit_2(tmp_path, capsys, options, message):
    write_smooth_images(tmp_path / "frames", 2, seed=1)
    argv = [part.format(tmp=tmp_path) for part in options]
    code = main(["data", "duplicates", *argv, "--out", str(tmp_path / "groups.csv"), "--quiet"])
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.count("\n") == 1 and message.format(tmp=tmp_path) in stderr
    assert not (tmp_path / "groups.csv").exists()

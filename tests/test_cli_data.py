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

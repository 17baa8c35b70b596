"""The README's main job, shrunk to seconds."""

from ssl4gie.cli import main


def test_demo_smoke_writes_its_outputs_and_reuses_data(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--smoke", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "data" in table and "views" in table
    assert (out / "views.png").stat().st_size > 1000
    layouts = sorted(p.name for p in (out / "data").iterdir())
    assert layouts == ["hyperkvasir-labeled", "hyperkvasir-unlabeled", "kvasir-seg"]
    written = (out / "data" / "kvasir-seg" / "kavsir_bboxes.json").stat().st_mtime_ns
    assert main(["demo", "--smoke", "--out", str(out)]) == 0  # second run reuses the data
    assert (out / "data" / "kvasir-seg" / "kavsir_bboxes.json").stat().st_mtime_ns == written


def test_demo_rejects_two_sizes(capsys):
    assert main(["demo", "--smoke", "--full"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err

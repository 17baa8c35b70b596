"""A bad study config fails before any training, listing every problem; the statistics."""

import math

import pytest

from ssl4gie.cli import main
from ssl4gie.cli.lightning import CONFIGS
from ssl4gie.errors import InputError
from ssl4gie.studies import STUDIES, load_config
from ssl4gie.studies.cells import expand
from ssl4gie.studies.stats import mean_std, paired_t_test, student_t_two_sided_p


def test_every_problem_is_listed_before_anything_runs(study_files, tmp_path):
    path = study_files(
        "ssl4gie-table",
        label_fractions=[0.5, 1.5],
        modes=["finetune", "probe"],
        shifts={"blurr": [1], "jpeg": [9]},
        baseline="nobody",
        backbones={
            "typo": {"backbone": "resnet5O"},
            "fused": {"members": ["typo", "missing"]},
            "extra": {"backbone": "test_resnet", "colour": "red"},
            "decay": {"backbone": "test_resnet", "model": {"layer_decayy": 0.75}},
        },
        tasks={
            "landmarks": {
                "config": str(tmp_path / "landmarks.yaml"),
                "model": {"lrr": 0.1},
                "data": {"root": str(tmp_path / "nowhere")},
            },
            "unknown": {"config": "finetune/no_such_config"},
        },
    )
    with pytest.raises(InputError) as caught:
        load_config(path)
    message = str(caught.value)
    for fragment in [
        "label_fractions: 1.5",
        "unknown mode 'probe'",
        "unknown shift 'blurr'",
        "jpeg",
        "baseline 'nobody'",
        "backbones.typo: unknown backbone 'resnet5O'",
        "member 'missing'",
        "backbones.extra: unknown key 'colour'",
        "backbones.decay.model: the landmarks task takes no argument 'layer_decayy'",
        "takes no argument 'lrr'",
        "nowhere does not exist",
        "tasks.unknown: fine-tune config 'finetune/no_such_config'",
    ]:
        assert fragment in message, fragment
    assert not (tmp_path / "out").exists()


def test_cli_check_exit_codes(study_files, capsys):
    path = study_files("dvme", backbones={"resnet": {"backbone": "test_resnet"}})
    assert main(["study", "dvme", "--config", path]) == 2
    assert "dvme needs a backbone entry with members" in capsys.readouterr().err
    path = study_files("ssl4gie-table", seeds=[0, 1], backbones={"r": {"backbone": "test_resnet"}})
    assert main(["study", "ssl4gie-table", "--config", path, "--check"]) == 0
    assert "2 cells" in capsys.readouterr().out
    assert main(["study", "convergence", "--config", path]) == 2
    assert "is a 'ssl4gie-table' config" in capsys.readouterr().err
    assert main(["study", "ssl4gie-table", "--config", path, "--shard", "2/2"]) == 2


def test_grid_order_and_ids(study_files):
    path = study_files(
        "label-efficiency",
        seeds=[0, 1],
        label_fractions=[0.1, 1.0],
        backbones={"a": {"backbone": "test_resnet"}, "b": {"backbone": "test_convnext"}},
    )
    ids = [cell.id for cell in expand(load_config(path))]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert ids[:3] == [
        "landmarks__a__finetune__0.1__s0",
        "landmarks__a__finetune__0.1__s1",
        "landmarks__a__finetune__all__s0",
    ]


# Two-sided 5 % and 1 % critical values of Student's t (standard tables).
CRITICAL = {
    1: (12.706, 63.657),
    2: (4.303, 9.925),
    3: (3.182, 5.841),
    4: (2.776, 4.604),
    5: (2.571, 4.032),
    9: (2.262, 3.250),
    10: (2.228, 3.169),
    30: (2.042, 2.750),
}


@pytest.mark.parametrize("df", sorted(CRITICAL))
def test_student_t_p_values_match_the_tables(df):
    five, one = CRITICAL[df]
    assert student_t_two_sided_p(five, df) == pytest.approx(0.05, abs=2e-4)
    assert student_t_two_sided_p(-one, df) == pytest.approx(0.01, abs=1e-4)
    assert student_t_two_sided_p(0.0, df) == pytest.approx(1.0)


def test_paired_t_test_by_hand():
    first, second = [0.80, 0.82, 0.85, 0.79], [0.78, 0.81, 0.80, 0.79]
    d = [0.02, 0.01, 0.05, 0.0]
    mean = sum(d) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    t, p = paired_t_test(first, second)
    assert t == pytest.approx(mean / (std / 2))
    assert p == pytest.approx(student_t_two_sided_p(t, 3))
    assert 0.05 < p < 0.5
    assert paired_t_test([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0)
    assert mean_std([2.0]) == (2.0, 0.0)


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_shipped_configs_only_lack_the_datasets(study, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # data/... does not exist here
    with pytest.raises(InputError) as caught:
        load_config(CONFIGS / "studies" / f"{study}.yaml", study)
    problems = str(caught.value).splitlines()[1:]
    assert problems and all("does not exist" in line for line in problems), problems

"""The removed per-pair config files: their paths still train, with a warning naming the new one."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import _cli  # noqa: E402


@pytest.mark.parametrize(
    "old, new",
    [
        ("configs/symile_xor_symile.py", "configs/benchmark.py:symile_xor,symile"),
        ("configs/confu_xor_gated_symile.py", "configs/benchmark.py:confu_xor,gated_symile"),
        ("configs/m3_digits_clip.py", "configs/benchmark.py:m3_digits,clip"),
    ],
)
def test_a_removed_config_path_names_its_replacement(old, new, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert _cli.moved_config(old) == new
    assert _cli.moved_config(os.path.join(ROOT, old)) == os.path.join(ROOT, new)


@pytest.mark.parametrize(
    "path",
    [
        "configs/nope.py",
        "configs/benchmark.py",
        "configs/hub/symile_m3.py",
        "configs/mnist_clip.py",
        "elsewhere/symile_xor_clip.py",
    ],
)
def test_other_paths_are_left_alone(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert _cli.moved_config(path) is None


def test_both_flag_spellings_are_rewritten_with_a_warning(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    argv = ["train.py", "--config", "configs/fragility_confu.py", "--workdir", "w", "--config.epochs=2"]
    assert _cli._redirect_moved_config("train.py", argv, "config") == [
        "train.py",
        "--config",
        "configs/benchmark.py:fragility,confu",
        "--workdir",
        "w",
        "--config.epochs=2",
    ]
    assert _cli._redirect_moved_config("train.py", ["t", "--config=configs/symile_xor_gram.py"], "config") == [
        "t",
        "--config=configs/benchmark.py:symile_xor,gram",
    ]
    err = capsys.readouterr().err
    assert "configs/fragility_confu.py is deprecated" in err and "--config configs/benchmark.py:fragility,confu" in err
    unchanged = ["t", "--config", "configs/benchmark.py:symile_xor,clip"]
    assert _cli._redirect_moved_config("t", unchanged, "config") == unchanged


def test_config_flags_pass_the_argument_and_overrides(monkeypatch):
    # The same loader as tools/train.py: ml_collections' config_flags, `file.py:arg` plus --config.k=v.
    from absl import flags
    from ml_collections import config_flags

    monkeypatch.chdir(ROOT)
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True)
    argv = [
        "t",
        "--config=configs/benchmark.py:misalignment,clip",
        "--config.epochs=2",
        "--config.dataset.params.n_train=64",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    values(argv)
    config = values.config
    assert (config.dataset.name, config.model.objective, config.epochs) == ("misalignment", "clip", 2)
    assert config.dataset.params.n_train == 64 and config.batch_size == 128

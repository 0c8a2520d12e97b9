"""tf_mmcl.training: configs, dataset/model building, train -> evaluate -> export, clear errors."""

import glob
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.benchmark import benchmark_config
from tf_mmcl import training
from tf_mmcl.models import OBJECTIVES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARK_CONFIG = os.path.join(REPO, "configs", "benchmark.py")
# The pairs the docs show (configs/benchmark.py:<benchmark>,<objective>); every other pair is validated only.
SHOWN = (
    [("symile_xor", o) for o in OBJECTIVES]
    + [(b, o) for b in ("confu_xor", "fragility", "m3_digits") for o in ("clip", "symile", "confu", "gated_symile")]
    + [("misalignment", "clip"), ("misalignment", "symile")]
)
TINY = [
    "dataset.params.n_train=256",
    "dataset.params.n_val=64",
    "dataset.params.n_test=64",
    "epochs=1",
    "batch_size=64",
    "verbose=0",
]


def tiny_config(benchmark="symile_xor", objective="symile", *overrides):
    return training.apply_overrides(benchmark_config(benchmark, objective), TINY + list(overrides))


# ---------------------------------------------------------------------------------- configs
def test_benchmark_config_file_gives_a_valid_config_for_every_benchmark_and_objective():
    from configs import benchmark

    for name in benchmark.BENCHMARKS:
        for objective in OBJECTIVES:
            config = training.validate_config(benchmark.get_config(f"{name},{objective}"))
            assert (config.dataset.name, config.model.objective) == (name, objective)
    assert benchmark.get_config("symile_xor,confu").epochs == 6  # a pair's own setting
    assert benchmark.get_config(" fragility , gated_symile ").model.objective_options.key_dim == 16
    for arg in (None, "", "symile_xor", "symile_xor,clip,x", "symile_xor,"):
        with pytest.raises(ValueError, match=r"configs/benchmark.py:symile_xor,symile"):
            benchmark.get_config(arg)


def test_the_library_holds_no_experiment_presets():
    # Settings live in configs/: the schema's defaults are the generator's and the objective's own.
    assert not hasattr(training, "BENCHMARKS") and not hasattr(training, "benchmark_config")
    config = training.default_config()
    assert config.dataset.params.to_dict() == {}
    assert config.model.objective_options.to_dict() == training.objective_defaults("symile")
    assert training.objective_defaults("gated_symile")["key_dim"] == 256  # the gate's own default


@pytest.fixture(scope="module")
def m3_tiny(tmp_path_factory):
    """Overrides that read m3_digits/tiny, built once from the cached clips (no espeak-ng)."""
    clips = os.path.join(REPO, "tests", "datasets", "data", "m3_digits_clips")
    return [
        "dataset.tfds_name=m3_digits/tiny",
        f"dataset.data_dir={tmp_path_factory.mktemp('tfds')}",
        f"dataset.params.clip_source={clips}",
        "epochs=1",
        "batch_size=16",
        "verbose=0",
    ]


@pytest.mark.parametrize("pair", SHOWN, ids="{0[0]},{0[1]}".format)
def test_every_shown_config_builds_its_dataset_and_model(pair, m3_tiny):
    m3 = pair[0] == "m3_digits"
    config = training.load_config_file(f"{BENCHMARK_CONFIG}:{pair[0]},{pair[1]}", m3_tiny if m3 else TINY)
    assert (config.dataset.name, config.model.objective) == pair
    splits = training.build_dataset(config)
    assert splits.num_examples("train") == (40 if m3 else 256)
    model = training.build_model(config, splits.modalities)
    batch = training.train_inputs({k: v[:8] for k, v in splits.as_numpy("train").items()}, splits.modalities)
    out = model(batch)
    for m in splits.modalities:
        assert out[m].shape == (8, config.model.embedding_dim)
        norms = np.linalg.norm(out[m], axis=1)  # unit rows (an all-zero bit vector may map to 0 before training)
        assert np.all(np.isfinite(norms)) and np.all(norms < 1 + 1e-4) and np.mean(norms > 1 - 1e-4) > 0.5


def test_unknown_config_key_is_named_with_a_suggestion():
    config = benchmark_config("symile_xor", "clip")
    with config.unlocked():
        config.model.embeding_dim = 8
    with pytest.raises(
        ValueError, match=r"Unknown config key.*'model.embeding_dim'.*did you mean 'model.embedding_dim'"
    ):
        training.validate_config(config)
    with pytest.raises(ValueError, match=r"Unknown config key 'batch_sise'.*did you mean 'batch_size'"):
        training.apply_overrides(config, ["batch_sise=3"])
    with pytest.raises(ValueError, match="key.path=value"):
        training.apply_overrides(config, ["epochs"])


def test_overrides_parse_literals_and_keep_types():
    config = training.apply_overrides(
        benchmark_config("symile_xor", "clip"),
        [
            "batch_size=256",
            "learning_rate=1",
            "model.objective=confu",
            "model.objective_options.lam=0.25",
            "model.modalities=('a', 'b', 'c')",
        ],
    )
    assert config.batch_size == 256 and config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.model.objective == "confu" and config.model.objective_options.lam == 0.25
    with pytest.raises(ValueError, match="batch_size holds a int"):
        training.apply_overrides(config, ["batch_size='big'"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("dataset.name=imagenet", r"Unknown dataset 'imagenet'; expected one of \['confu_xor', 'fragility'"),
        ("model.objective=infonce", r"Unknown objective 'infonce'; expected one of \('clip'"),
        ("dataset.source=web", "Unknown dataset source 'web'"),
        ("dataset.params.n_bits=3", r"Unknown dataset.params \['n_bits'\] for dataset 'symile_xor'"),
    ],
)
def test_unknown_dataset_objective_source_or_parameter(override, message):
    with pytest.raises(ValueError, match=message):
        training.validate_config(training.apply_overrides(benchmark_config("symile_xor", "clip"), [override]))


@pytest.mark.parametrize("value", [0, -2])
def test_steps_per_execution_below_one_is_an_error(value):
    config = training.apply_overrides(benchmark_config("symile_xor", "clip"), [f"steps_per_execution={value}"])
    with pytest.raises(ValueError, match=f"steps_per_execution must be an integer >= 1, got {value}"):
        training.validate_config(config)


def test_steps_per_execution_trains_the_same_model(tmp_path):
    # K steps per tf.function call is a dispatch setting: same batches, same updates, same weights.
    weights, history = {}, {}
    for k in (1, 4):
        keras.utils.set_random_seed(0)
        result = training.train(tiny_config("symile_xor", "clip", f"steps_per_execution={k}"), str(tmp_path / str(k)))
        assert result.model.steps_per_execution == k
        weights[k], history[k] = result.model.get_weights(), result.history
    assert len(weights[1]) == len(weights[4])
    for a, b in zip(weights[1], weights[4]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert history[4]["loss"] == pytest.approx(history[1]["loss"], rel=1e-4)
    assert history[4]["val_loss"] == pytest.approx(history[1]["val_loss"], rel=1e-4)


def test_benchmark_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="Unknown benchmark 'mnist'"):
        benchmark_config("mnist", "clip")
    with pytest.raises(ValueError, match="Unknown objective 'simclr'"):
        benchmark_config("symile_xor", "simclr")


def test_config_modalities_must_match_the_dataset(tmp_path):
    config = tiny_config("symile_xor", "clip", "model.modalities=('a', 'b', 'x')")
    with pytest.raises(ValueError, match=r"modalities \['a', 'b', 'x'\] do not match.*\['a', 'b', 'c'\]"):
        training.train(config, str(tmp_path / "run"))
    # An objective the dataset cannot take: ConFu needs 3 modalities, misalignment has 2.
    config = tiny_config("misalignment", "confu")
    with pytest.raises(ValueError, match=r"Cannot build the 'confu' model on dataset 'misalignment'.*at least 3"):
        training.train(config, str(tmp_path / "run2"))


def test_workdir_errors(tmp_path):
    with pytest.raises(ValueError, match="workdir is required"):
        training.train(tiny_config(), "")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="a_file"):
        training.train(tiny_config(), str(blocker / "run"))
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        training.check_workdir(str(blocker))
    with pytest.raises(FileNotFoundError, match="does not exist; train first"):
        training.evaluate(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no finished training run"):
        training.export(str(tmp_path / "empty"))


def test_too_small_training_split_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fewer than batch_size=512"):
        training.train(tiny_config("symile_xor", "clip", "batch_size=512"), str(tmp_path))


# ---------------------------------------------------------------------------------- a run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    keras.utils.set_random_seed(0)
    result = training.train(tiny_config("symile_xor", "symile", "epochs=2"), workdir)
    return workdir, result


def test_train_writes_checkpoints_logs_metrics_and_model(tiny_run):
    workdir, result = tiny_run
    assert set(result.history) >= {"loss", "top1_a", "logit_scale", "val_loss", "val_top1_a"}
    assert len(result.history["loss"]) == 2 and np.all(np.isfinite(result.history["loss"]))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["epoch_001.weights.h5", "epoch_002.weights.h5"]
    events = glob.glob(os.path.join(workdir, "tensorboard", "**", "events.out.tfevents.*"), recursive=True)
    assert events
    with open(os.path.join(workdir, "metrics.csv")) as f:
        assert len(f.read().strip().splitlines()) == 3  # header + 2 epochs
    with open(os.path.join(workdir, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["history"]["loss"] == pytest.approx(result.history["loss"])
    assert saved["epochs_done"] == 2 and saved["train_seconds"] > 0 and saved["objective"] == "symile"
    assert not os.path.exists(os.path.join(workdir, "backup"))  # removed after a finished run
    config, model = training.load_run(workdir)
    x = {m: np.eye(5, dtype="float32") for m in "abc"}
    np.testing.assert_allclose(model.embed("a", x["a"]), result.model.embed("a", x["a"]), atol=1e-6)
    assert config.model.objective == "symile" and config.dataset.params.n_train == 256


def test_a_run_saved_before_steps_per_execution_existed_still_loads(tiny_run, tmp_path):
    workdir, _ = tiny_run
    old = tmp_path / "old_run"
    shutil.copytree(workdir, old)
    with open(old / "config.json") as f:
        saved = json.load(f)
    del saved["steps_per_execution"]
    with open(old / "config.json", "w") as f:
        json.dump(saved, f)
    config, _ = training.load_run(str(old))
    assert config.steps_per_execution == 1
    # Other missing keys are still errors.
    del saved["epochs"]
    with pytest.raises(ValueError, match=r"missing the key\(s\) \['epochs'\]"):
        training.load_saved_config(saved)


def test_evaluate_writes_markdown_and_plots_and_matches_model_scores(tiny_run):
    workdir, result = tiny_run
    report = training.evaluate(workdir)
    assert set(report["directions"]) == {"b->a", "c->a", "b,c->a"}
    assert report["num_candidates"] == 32 and report["chance"] == pytest.approx(1 / 32)
    # 2->1 top-1 equals the accuracy of the model's own scores over the candidate set.
    splits = training.build_dataset(training.load_run(workdir)[0])
    test = splits.as_numpy("test")
    scores = result.model.score({"b": test["b"], "c": test["c"]}, "a", splits.info["candidates"]).numpy()
    right = scores[np.arange(len(scores)), test["a_index"]]
    expected = np.mean((scores >= right[:, None]).sum(axis=1) == 1)
    assert report["directions"]["b,c->a"]["top1"] == pytest.approx(expected)
    assert report["summary"]["2->1"] == pytest.approx(expected)
    assert report["summary"]["1->1"] == pytest.approx(
        (report["directions"]["b->a"]["top1"] + report["directions"]["c->a"]["top1"]) / 2
    )
    with open(report["paths"]["markdown"]) as f:
        text = f.read()
    assert "| direction | top1 | recall@5 | recall@10 | mrr |" in text and "| b,c->a |" in text
    for key in ("retrieval_plot", "training_curves"):
        with open(report["paths"][key], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    table = training.comparison_markdown({"symile": report})
    assert "| symile |" in table and "top-1 2->1" in table and "| chance | 0.031 | 0.031 |" in table


def test_export_serves_the_same_scores(tiny_run, tmp_path):
    workdir, result = tiny_run
    out = training.export(workdir, export_dir=str(tmp_path), version=3)
    assert out["saved_model"] == os.path.join(str(tmp_path), "symile_xor_symile", "3")
    loaded = tf.saved_model.load(out["saved_model"])
    cands = np.load(out["candidates"])
    assert str(cands["target"]) == "a" and cands["candidate_embeddings"].shape == (32, 16)
    x = {m: np.eye(5, dtype="float32")[:4] for m in "bc"}
    served = loaded.signatures["score_a"](
        b=tf.constant(x["b"]), c=tf.constant(x["c"]), candidate_embeddings=tf.constant(cands["candidate_embeddings"])
    )["logits"]
    np.testing.assert_allclose(served, result.model.score(x, "a", cands["candidates"]), rtol=1e-4, atol=1e-4)


def test_symile_learns_xor_and_clip_does_not(tmp_path):
    reports = {}
    for objective in ("symile", "clip"):
        config = training.apply_overrides(
            benchmark_config("symile_xor", objective),
            [
                "dataset.params.d_v=3",
                "dataset.params.n_train=1024",
                "dataset.params.n_val=64",
                "dataset.params.n_test=256",
                "epochs=6",
                "batch_size=64",
                "verbose=0",
            ],
        )
        training.train(config, str(tmp_path / objective))
        reports[objective] = training.evaluate(str(tmp_path / objective))
    assert reports["symile"]["summary"]["2->1"] > 0.9
    assert reports["clip"]["summary"]["2->1"] < 0.35
    for r in reports.values():
        assert r["summary"]["1->1"] < 0.35  # every pair is independent at p_hat = 1


# ---------------------------------------------------------------------------------- other benchmarks
def test_fragility_evaluation_uses_class_candidates_and_breaks_down_by_corruption():
    config = tiny_config("fragility", "symile")
    splits = training.build_dataset(config)
    model = training.build_model(config, splits.modalities)
    model(training.train_inputs(splits.as_numpy("train"), splits.modalities))
    result = training.evaluate_model(model, splits, ks=(1,))
    assert result["num_candidates"] == 2 and set(result["directions"]) == {"b->a", "c->a", "b,c->a"}
    groups = result["by_group"]["groups"]
    assert groups["all"]["count"] == 64
    assert sum(v["count"] for k, v in groups.items() if k != "all") == 64
    assert set(groups) - {"all"} <= {"clean", "misaligned", "weak", "missing"}
    assert "by corruption kind" in training.results_markdown(result)


def test_misalignment_evaluation_retrieves_rows_and_reports_identifiability():
    config = tiny_config("misalignment", "clip")
    splits = training.build_dataset(config)
    model = training.build_model(config, splits.modalities)
    model(training.train_inputs(splits.as_numpy("train"), splits.modalities))
    result = training.evaluate_model(model, splits)
    assert set(result["directions"]) == {"t->x", "x->t"} and set(result["summary"]) == {"1->1"}
    assert result["num_candidates"] == 64
    assert {"s_inv", "m_x", "m_t"} <= set(result["identifiability"]["r2"])
    assert "Identifiability" in training.results_markdown(result)


def test_tfds_source_reads_the_same_data_as_the_generator(tmp_path):
    config = tiny_config(
        "symile_xor",
        "clip",
        "dataset.source='tfds'",
        "dataset.tfds_name='symile_xor/tiny'",
        f"dataset.data_dir='{tmp_path}'",
    )
    splits = training.build_dataset(config)
    generated = training.build_dataset(
        training.apply_overrides(
            tiny_config(),
            [
                "dataset.params.d_v=3",
                "dataset.params.n_train=64",
                "dataset.params.n_val=16",
                "dataset.params.n_test=16",
            ],
        )
    )
    assert splits.modalities == ["a", "b", "c"]
    for split in ("train", "val", "test"):
        for key in ("a", "b", "c", "a_index"):
            np.testing.assert_array_equal(splits.as_numpy(split)[key], generated.as_numpy(split)[key])
    assert splits.info["candidates"].shape == (8, 3)
    with pytest.raises(ValueError, match="Unknown dataset 'nope'"):
        training.prepare_tfds("nope/tiny", str(tmp_path))
    with pytest.raises(ValueError, match="Unknown config 'huge' of dataset 'symile_xor'"):
        training.prepare_tfds("symile_xor/huge", str(tmp_path))
    with pytest.raises(ValueError, match="is not a config of dataset.name 'confu_xor'"):
        training.build_dataset(training.apply_overrides(config, ["dataset.name='confu_xor'", "dataset.params={}"]))

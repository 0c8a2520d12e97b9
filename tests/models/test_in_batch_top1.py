"""The logged ``top1_<m>`` metric: ties as an expectation, repeated values as the same candidate.

A batch of a discrete benchmark repeats values (32 values of c in a batch of 128), so the own
candidate ties with its copies; the metric must read ~1 for a perfect model and ~chance for a
model at chance on the batches of every shipped benchmark, not ~0.
"""

import os

import keras
import numpy as np
import pytest

import tf_mmcl
from configs.benchmark import BENCHMARKS, benchmark_config
from tf_mmcl.models.contrastive import _in_batch_top1, _row_fingerprint, _same_rows
from tf_mmcl.training import build_dataset


def top1(scores, valid=None, same=None):
    return float(_in_batch_top1(np.asarray(scores, "float32"), valid, same))


def test_ties_count_as_the_expected_top1():
    # Row 0: own score tied with one distinct candidate -> 1/2. Row 1: beaten -> 0.
    # Row 2: strictly best -> 1.
    scores = [[1.0, 1.0, 0.0], [0.0, 0.5, 2.0], [0.0, 0.0, 3.0]]
    assert top1(scores) == pytest.approx((0.5 + 0.0 + 1.0) / 3)


def test_a_copy_of_the_own_candidate_is_a_hit_but_collapse_is_not():
    inputs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0]], "float32")
    same = _same_rows(_row_fingerprint(inputs))
    np.testing.assert_array_equal(np.asarray(same), [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]])
    perfect = np.asarray(same, "float32")  # equal inputs -> equal scores, the best ones
    assert top1(perfect, same=same) == 1.0
    assert top1(perfect) == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)  # without `same`: copies split
    collapsed = np.zeros((4, 4), "float32")  # every score equal: expectation = share of own copies
    assert top1(collapsed, same=same) == pytest.approx((2 / 4 + 1 / 4 + 2 / 4 + 1 / 4) / 4)


def test_invalid_rows_neither_query_nor_compete():
    scores = [[1.0, 5.0, 0.0], [0.0, 1.0, 0.0], [0.0, 9.0, 2.0]]
    valid = np.array([True, False, True])
    assert top1(scores, valid) == 1.0  # column 1 (invalid) would beat rows 0 and 2


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_perfect_reads_one_and_chance_reads_chance_on_every_benchmark(benchmark, tmp_path):
    config = benchmark_config(benchmark, "clip")
    if benchmark == "m3_digits":  # its tiny build, from the cached clips (no espeak-ng)
        clips = os.path.join(os.path.dirname(os.path.dirname(__file__)), "datasets", "data", "m3_digits_clips")
        config.dataset.update(tfds_name="m3_digits/tiny", data_dir=str(tmp_path))
        config.dataset.params.clip_source = clips
    else:
        config.dataset.params.update(n_train=config.batch_size, n_val=8, n_test=8)
    splits = build_dataset(config)
    batch = splits.as_numpy("train")
    rng = np.random.default_rng(0)
    for target in splits.modalities:
        x = batch[target][: config.batch_size]
        same = np.asarray(_same_rows(_row_fingerprint(x)))
        exact = np.all(x.reshape(len(x), -1)[:, None] == x.reshape(len(x), -1)[None], axis=-1)
        np.testing.assert_array_equal(same, exact)
        # Perfect: the own value scores best (copies of it score the same).
        perfect = exact.astype("float32") + 0.01 * rng.random(exact.shape).astype("float32") * ~exact
        assert top1(perfect, same=same) == 1.0, (benchmark, target)
        # Chance: random scores; the expectation is the mean share of each row's copies.
        chance = np.mean(exact.sum(axis=1) / len(x))
        measured = np.mean([top1(rng.random(exact.shape), same=same) for _ in range(40)])
        assert measured == pytest.approx(chance, abs=0.02 + 0.5 * chance), (benchmark, target, chance)


def test_a_trained_symile_model_logs_about_one_and_clip_about_chance_on_xor():
    # c = a XOR b over 3 bits: 8 values repeat ~8 times in a batch of 64. Symile solves it; the
    # pairwise CLIP cannot, so its 2->1 retrieval of c stays at chance (1/8).
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, (1024, 3)), rng.integers(0, 2, (1024, 3))
    data = {"a": 2.0 * a - 1, "b": 2.0 * b - 1, "c": 2.0 * (a ^ b) - 1}
    data = {k: v.astype("float32") for k, v in data.items()}
    logged = {}
    for objective, options in (("symile", {"negative_sampling": "n_squared"}), ("clip", {})):
        keras.utils.set_random_seed(0)
        model = tf_mmcl.models.MultimodalContrastiveModel(
            {m: tf_mmcl.layers.MLPEncoder(hidden_units=(), output_dim=16) for m in "abc"},
            embedding_dim=16,
            objective=objective,
            **options,
        )
        model.compile(optimizer=keras.optimizers.Adam(0.02))
        history = model.fit(data, epochs=6, batch_size=64, verbose=0, validation_data=data)
        logged[objective] = (history.history["top1_c"][-1], history.history["val_top1_c"][-1])
    assert min(logged["symile"]) > 0.95, logged
    assert max(logged["clip"]) < 0.125 + 0.08, logged

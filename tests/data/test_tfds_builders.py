"""The tfds builders build offline and hold exactly the generators' content."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tf_mmcl.datasets as mm_datasets
from tf_mmcl.data import from_tfds
from tf_mmcl.data.synthetic import GENERATORS
from tf_mmcl.datasets import TFDS_SPLITS, SyntheticConfig


@pytest.mark.parametrize("name", sorted(mm_datasets.BUILDERS))
def test_builder_matches_generator(name, tmp_path):
    builder = tfds.builder(f"{name}/tiny", data_dir=str(tmp_path))
    builder.download_and_prepare()
    generated = GENERATORS[name](**builder.builder_config.params)
    for tfds_split, ours in TFDS_SPLITS.items():
        expected = generated.as_numpy(ours)
        n = len(next(iter(expected.values())))
        assert builder.info.splits[tfds_split].num_examples == n
        got = next(iter(tfds.as_numpy(builder.as_dataset(split=tfds_split).batch(n))))
        assert sorted(got) == sorted(expected)
        for k, v in expected.items():
            assert got[k].dtype == v.dtype, k
            np.testing.assert_array_equal(got[k], v, err_msg=f"{name}/{tfds_split}/{k}")


def test_custom_config_and_from_tfds(tmp_path):
    config = SyntheticConfig(name="mine", params=dict(d_v=2, p_hat=0.5, n_train=12, n_val=3, n_test=5, seed=9))
    builder = mm_datasets.SymileXor(config=config, data_dir=str(tmp_path))
    ds = from_tfds(builder, "val", keys=["a", "b", "c"])
    rows = list(ds.as_numpy_iterator())
    expected = GENERATORS["symile_xor"](**config.params).as_numpy("val")
    assert len(rows) == 3 and sorted(rows[0]) == ["a", "b", "c"]
    np.testing.assert_array_equal(np.stack([r["c"] for r in rows]), expected["c"])
    assert builder.benchmark_info()["candidates"].shape == (4, 2)
    by_name = list(from_tfds("symile_xor/tiny", "test", data_dir=str(tmp_path)).as_numpy_iterator())
    assert len(by_name) == 16
    with pytest.raises(ValueError, match="not in the dataset"):
        from_tfds(builder, "train", keys=["zz"])
    with pytest.raises(ValueError, match="name or a tfds builder"):
        from_tfds(3)

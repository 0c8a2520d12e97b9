"""A tensorflow-datasets builder over a :mod:`tf_mmcl.data.synthetic` generator.

The data are generated in process (no download) from the config's parameters and seed, so a
prepared dataset holds exactly what the generator returns: same examples, same order
(``disable_shuffling``). Splits are named ``train``, ``validation``, ``test`` (the generator's
``train``, ``val``, ``test``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

__all__ = ["SyntheticConfig", "SyntheticBuilder", "TFDS_SPLITS"]

# tfds split name -> generator split name.
TFDS_SPLITS = {"train": "train", "validation": "val", "test": "test"}
_SPEC_SIZES = {"n_train": 1, "n_val": 1, "n_test": 1}


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
    """A builder config: the generator's keyword arguments (split sizes and seed included)."""

    params: dict = dataclasses.field(default_factory=dict)


def _feature(arr):
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        dtype = np.bool_
    elif np.issubdtype(arr.dtype, np.floating):
        dtype = np.float32
    elif np.issubdtype(arr.dtype, np.integer):
        dtype = np.int32
    else:
        raise ValueError(f"unsupported dtype {arr.dtype} for a synthetic feature.")
    return tfds.features.Tensor(shape=arr.shape[1:], dtype=dtype)


class SyntheticBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the synthetic builders: subclasses set ``GENERATOR``, ``DESCRIPTION``, configs."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: in-process generation."}
    GENERATOR = None
    DESCRIPTION = ""
    CITATION = ""

    def _params(self, **overrides):
        params = dict(self.builder_config.params)
        params.update(overrides)
        return params

    def benchmark_info(self) -> dict:
        """The generator's ``info`` for this config (parameters, candidate sets, index sets)."""
        return type(self).GENERATOR(**self._params(**_SPEC_SIZES)).info

    def _info(self) -> tfds.core.DatasetInfo:
        sample = type(self).GENERATOR(**self._params(**_SPEC_SIZES)).as_numpy("train")
        features = tfds.features.FeaturesDict({k: _feature(v) for k, v in sample.items()})
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=features,
            citation=self.CITATION,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: generated in process.
        splits = type(self).GENERATOR(**self._params())
        return {name: self._generate_examples(splits.as_numpy(ours)) for name, ours in TFDS_SPLITS.items()}

    def _generate_examples(self, arrays):
        n = next(iter(arrays.values())).shape[0]
        for i in range(n):
            yield i, {k: v[i] for k, v in arrays.items()}

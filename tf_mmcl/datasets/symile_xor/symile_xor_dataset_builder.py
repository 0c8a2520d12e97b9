"""``symile_xor``: the Symile binary XOR benchmark as a tensorflow-datasets builder.

Configs: ``default`` (d_v = 5, p_hat = 1, 10000/1000/1000 examples), ``p0.0`` ...
``p1.0`` (the paper's p_hat sweep at d_v = 5) and ``tiny`` (64/16/16, for tests).
Content: :func:`tf_mmcl.data.synthetic.make_symile_xor` with the config's parameters (splits ``train``,
``validation``, ``test``; same examples in the same order).

Example:
    >>> import tempfile, tensorflow_datasets as tfds, tf_mmcl.datasets  # doctest: +SKIP
    >>> ds = tfds.load("symile_xor/tiny", split="test", data_dir=tempfile.mkdtemp())  # doctest: +SKIP
"""

from tf_mmcl.data.synthetic import symile_xor as _generator
from tf_mmcl.datasets._synthetic_builder import SyntheticBuilder, SyntheticConfig

_SIZES = {"n_train": 10000, "n_val": 1000, "n_test": 1000}


class Builder(SyntheticBuilder):
    """The Symile binary XOR benchmark."""

    name = "symile_xor"
    GENERATOR = staticmethod(_generator.make_symile_xor)
    DESCRIPTION = _generator.__doc__
    CITATION = "Saporta, Puli, Goldstein, Ranganath. Contrastive learning beyond pairs (Symile). NeurIPS 2024."
    BUILDER_CONFIGS = (
        [SyntheticConfig(name="default", description="d_v=5, p_hat=1.", params=dict(d_v=5, p_hat=1.0, **_SIZES))]
        + [
            SyntheticConfig(
                name=f"p{p / 10:.1f}",
                description=f"d_v=5, p_hat={p / 10:.1f}.",
                params=dict(d_v=5, p_hat=p / 10, **_SIZES),
            )
            for p in range(11)
        ]
        + [
            SyntheticConfig(
                name="tiny",
                description="Tiny, for tests.",
                params=dict(d_v=3, p_hat=1.0, n_train=64, n_val=16, n_test=16),
            )
        ]
    )

"""``confu_xor``: the ConFu XOR benchmark as a tensorflow-datasets builder.

Configs: ``default`` (d = 5 bits, p_hat = 1, raw bits), ``geometric`` (bits embedded
in 32 dims with noise std 0.1) and ``tiny`` (for tests).
Content: :func:`tf_mmcl.data.synthetic.make_confu_xor` with the config's parameters (splits ``train``,
``validation``, ``test``; same examples in the same order).

Example:
    >>> import tempfile, tensorflow_datasets as tfds, tf_mmcl.datasets  # doctest: +SKIP
    >>> ds = tfds.load("confu_xor/tiny", split="test", data_dir=tempfile.mkdtemp())  # doctest: +SKIP
"""

from tf_mmcl.data.synthetic import confu_xor as _generator
from tf_mmcl.datasets._synthetic_builder import SyntheticBuilder, SyntheticConfig

_SIZES = {"n_train": 10000, "n_val": 1000, "n_test": 1000}


class Builder(SyntheticBuilder):
    """The ConFu XOR benchmark."""

    name = "confu_xor"
    GENERATOR = staticmethod(_generator.make_confu_xor)
    DESCRIPTION = _generator.__doc__
    CITATION = "Koutoupis et al. The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal Alignment. 2025."
    BUILDER_CONFIGS = (
        SyntheticConfig(name="default", description="d=5, p_hat=1, raw bits.", params=dict(d=5, p_hat=1.0, **_SIZES)),
        SyntheticConfig(
            name="geometric",
            description="d=5, p_hat=1, embedded in 32 dims, noise 0.1.",
            params=dict(d=5, p_hat=1.0, embed_dim=32, noise_std=0.1, **_SIZES),
        ),
        SyntheticConfig(
            name="tiny",
            description="Tiny, for tests.",
            params=dict(d=3, p_hat=0.5, embed_dim=6, noise_std=0.05, n_train=64, n_val=16, n_test=16),
        ),
    )

"""``fragility``: the fragility benchmark (misaligned / weak / missing modalities) as a tensorflow-datasets builder.

Configs: ``default`` (the Gated Symile defaults: 1 bit, 128 dims; 10 % of each
corruption kind on b or c), ``redundant`` (their u_v_uv variant) and ``tiny`` (for tests).
Content: :func:`tf_mmcl.data.synthetic.make_fragility` with the config's parameters (splits ``train``,
``validation``, ``test``; same examples in the same order).

Example:
    >>> import tempfile, tensorflow_datasets as tfds, tf_mmcl.datasets  # doctest: +SKIP
    >>> ds = tfds.load("fragility/tiny", split="test", data_dir=tempfile.mkdtemp())  # doctest: +SKIP
"""

from tf_mmcl.data.synthetic import fragility as _generator
from tf_mmcl.datasets._synthetic_builder import SyntheticBuilder, SyntheticConfig

_SIZES = {"n_train": 10000, "n_val": 1000, "n_test": 1000}


class Builder(SyntheticBuilder):
    """The fragility benchmark (misaligned / weak / missing modalities)."""

    name = "fragility"
    GENERATOR = staticmethod(_generator.make_fragility)
    DESCRIPTION = _generator.__doc__
    CITATION = (
        "Rheude, Hegselmann, Eils, Wild. Hidden in the Multiplicative Interaction: Uncovering Fragility "
        "in Multimodal Contrastive Learning. 2026."
    )
    BUILDER_CONFIGS = (
        SyntheticConfig(
            name="default",
            description="1 bit, 128 dims, 10 % of each corruption kind.",
            params=dict(n_bits=1, dim=128, **_SIZES),
        ),
        SyntheticConfig(
            name="redundant",
            description="The redundant (u, v, u xor v) embedding.",
            params=dict(n_bits=1, dim=128, embed_mode="redundant", **_SIZES),
        ),
        SyntheticConfig(
            name="tiny",
            description="Tiny, for tests.",
            params=dict(n_bits=2, dim=8, p_misaligned=0.2, p_weak=0.2, p_missing=0.2, n_train=64, n_val=16, n_test=16),
        ),
    )

"""``misalignment``: the Negate-or-Embrace misalignment latent-variable model as a tensorflow-datasets builder.

Configs: ``default`` (10 semantic and 5 modality-specific latents, all selected, none
perturbed), ``biased`` (the text sees semantics 0-5, of which 4-5 are perturbed with
probability 0.75) and ``tiny`` (for tests).
Content: :func:`tf_mmcl.data.synthetic.make_misalignment` with the config's parameters (splits ``train``,
``validation``, ``test``; same examples in the same order).

Example:
    >>> import tempfile, tensorflow_datasets as tfds, tf_mmcl.datasets  # doctest: +SKIP
    >>> ds = tfds.load("misalignment/tiny", split="test", data_dir=tempfile.mkdtemp())  # doctest: +SKIP
"""

from tf_mmcl.data.synthetic import misalignment as _generator
from tf_mmcl.datasets._synthetic_builder import SyntheticBuilder, SyntheticConfig

_SIZES = {"n_train": 10000, "n_val": 1000, "n_test": 1000}


class Builder(SyntheticBuilder):
    """The Negate-or-Embrace misalignment latent-variable model."""

    name = "misalignment"
    GENERATOR = staticmethod(_generator.make_misalignment)
    DESCRIPTION = _generator.__doc__
    CITATION = (
        "Cai, Liu, Gao, Jiang, Zhang, van den Hengel, Shi. Negate or Embrace: On How Misalignment Shapes "
        "Multimodal Representation Learning. 2025."
    )
    BUILDER_CONFIGS = (
        SyntheticConfig(name="default", description="All semantics selected, none perturbed.", params=dict(**_SIZES)),
        SyntheticConfig(
            name="biased",
            description="Semantics 0-5 selected, 4-5 perturbed (p=0.75).",
            params=dict(selected=list(range(6)), perturbed=[4, 5], **_SIZES),
        ),
        SyntheticConfig(
            name="tiny",
            description="Tiny, for tests.",
            params=dict(
                semantics_n=4,
                modality_n=2,
                selected=[0, 1, 2],
                perturbed=[2],
                cond_pool=500,
                n_train=64,
                n_val=16,
                n_test=16,
            ),
        ),
    )

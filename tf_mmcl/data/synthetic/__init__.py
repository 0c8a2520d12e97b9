"""The papers' synthetic benchmarks, as seeded generators of :class:`~tf_mmcl.data.MultimodalSplits`.

* :func:`make_symile_xor`: Symile's binary XOR (only the triple is informative at p_hat = 1).
* :func:`make_confu_xor`: ConFu's XOR (predict z2 from (z1, z3); pairwise MI zero at p_hat = 1).
* :func:`make_fragility`: Gated Symile's benchmark with misaligned / weak / missing modalities.
* :func:`make_misalignment`: the Negate-or-Embrace latent-variable model with selection and
  perturbation bias and the true latents.

Each returns train/val/test splits (``.train``, ``.val``, ``.test`` are unbatched
``tf.data.Dataset`` objects; ``.as_numpy(split)`` the arrays) and the modality names
(``.modalities``). The tensorflow-datasets builders in :mod:`tf_mmcl.datasets` hold the same
content.
"""

from tf_mmcl.data.synthetic.confu_xor import CONFU_MODALITIES, make_confu_xor
from tf_mmcl.data.synthetic.fragility import CORRUPTION_KINDS, FRAGILITY_MODALITIES, make_fragility
from tf_mmcl.data.synthetic.misalignment import (
    MISALIGNMENT_MODALITIES,
    apply_mlp,
    invertible_mlp,
    latent_blocks,
    make_misalignment,
)
from tf_mmcl.data.synthetic.symile_xor import (
    binary_candidates,
    bits_to_index,
    index_to_bits,
    make_symile_xor,
    xor_modality_names,
)

GENERATORS = {
    "symile_xor": make_symile_xor,
    "confu_xor": make_confu_xor,
    "fragility": make_fragility,
    "misalignment": make_misalignment,
}

__all__ = [
    "CONFU_MODALITIES",
    "CORRUPTION_KINDS",
    "FRAGILITY_MODALITIES",
    "GENERATORS",
    "MISALIGNMENT_MODALITIES",
    "apply_mlp",
    "binary_candidates",
    "bits_to_index",
    "index_to_bits",
    "invertible_mlp",
    "latent_blocks",
    "make_confu_xor",
    "make_fragility",
    "make_misalignment",
    "make_symile_xor",
    "xor_modality_names",
]

"""tf_mmcl: multimodal contrastive learning beyond pairs, in TensorFlow / Keras 3.

Importing the package registers every serialisable class, so ``.keras`` files load after
``import tf_mmcl``.

TensorFlow is not a plain dependency (a GPU user must not get ``tensorflow-cpu``): it comes
from the ``cpu`` or ``gpu`` extra, ``pip install "tf-mmcl[cpu]"`` or ``pip install "tf-mmcl[gpu]"``
(from a clone: ``pip install -e ".[cpu]"``).
"""

__version__ = "0.1.0"

import importlib.util as _importlib_util

# Say which extra is missing before the first submodule fails on `import tensorflow` deep inside.
if _importlib_util.find_spec("tensorflow") is None:
    raise ImportError(
        'tf_mmcl needs TensorFlow, which comes from an extra: pip install "tf-mmcl[cpu]" (CPU) or '
        'pip install "tf-mmcl[gpu]" (CUDA); from a clone: pip install -e ".[cpu]" (or make install).'
    )

from tf_mmcl import (  # noqa: E402
    data,
    distribute,
    evaluation,
    hub,  # noqa: E402  (keras-hub itself is imported only when used)
    keys,
    layers,
    losses,
    models,
    objectives,
    ops,
    optimizers,
    retrieval,
)

__all__ = [
    "data",
    "distribute",
    "evaluation",
    "hub",
    "keys",
    "layers",
    "losses",
    "models",
    "objectives",
    "ops",
    "optimizers",
    "retrieval",
    "__version__",
]

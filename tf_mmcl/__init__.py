"""tf_mmcl: multimodal contrastive learning beyond pairs, in TensorFlow / Keras 3.

Importing the package registers every serialisable class, so ``.keras`` files load after
``import tf_mmcl``.
"""

__version__ = "0.1.0"

from tf_mmcl import data, distribute, evaluation, layers, losses, models, ops, optimizers, retrieval  # noqa: E402
from tf_mmcl import hub  # noqa: E402  (keras-hub itself is imported only when used)

__all__ = ["data", "distribute", "evaluation", "hub", "layers", "losses", "models", "ops", "optimizers",
           "retrieval", "__version__"]

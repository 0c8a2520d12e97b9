"""Export for serving: SavedModels that a stock TF Serving loads, with retrieval signatures.

See :func:`export_for_serving` and ``docs/serving.md``.
"""

from tf_mmcl.export.saved_model import (
    CANDIDATE_EMBEDDINGS,
    SIGNATURE_CONTRACT,
    WARMUP_FILE,
    export_for_serving,
    serving_input_specs,
    signature_names,
)

__all__ = [
    "CANDIDATE_EMBEDDINGS",
    "SIGNATURE_CONTRACT",
    "WARMUP_FILE",
    "export_for_serving",
    "serving_input_specs",
    "signature_names",
]

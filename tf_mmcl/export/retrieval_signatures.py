"""``retrieve_<m>`` serving signatures: raw queries in, the top-k of a baked-in candidate index out.

Added by :func:`tf_mmcl.export.export_for_serving` when it is given ``index=``. The candidate
embeddings and ids are variables of the SavedModel (the candidate set is versioned with the
model). The search is exact and uses core TensorFlow ops only (``MatMul``, ``TopKV2``,
``While``, gathers):

* objectives whose score reduces to one query vector (see
  :meth:`tf_mmcl.objectives.Objective.reduce_queries`) run :func:`tf_mmcl.ops.blocked_top_k` on it;
* the others score every candidate block with the model's own score inside
  :func:`tf_mmcl.ops.streaming_top_k` (exhaustive, so exact).

Outputs: ``scores`` (B, k) float32 (the model's score times its logit scale, descending) and
``ids`` (B, k) (int64 or string, the index's ids).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_mmcl.export import saved_model

__all__ = [
    "RETRIEVAL_CONTRACT",
    "retrieval_query_subsets",
    "retrieval_signature_name",
    "check_indexes",
    "add_retrieval_endpoints",
]

RETRIEVAL_CONTRACT = """\
retrieve_<c>               (with index=) in: every modality but c, raw (B, ...)
                           out: scores (B, k) float32 descending, ids (B, k) int64 or string:
                           the top-k candidates of c from the index baked into the SavedModel
retrieve_<c>_from_<q...>   same with the query modalities q only (the others missing)
"""

# Candidates per block for objectives scored by the model inside the loop ((B, block, M)
# intermediates); reducible objectives use the blocked matmul's default block.
_MODEL_SCORE_BLOCK = 4096


def retrieval_query_subsets(model, candidate, partial_queries):
    """The query-modality subsets that get a ``retrieve_`` signature (as for ``score_``)."""
    return saved_model.query_subsets(model, candidate, partial_queries)


def retrieval_signature_name(model, candidate, queries):
    return saved_model.signature_name(model, candidate, queries, "retrieve")


def check_indexes(model, index):
    """``index`` (a CandidateIndex or a list of them, one per candidate modality) -> dict modality -> index."""
    from tf_mmcl.retrieval import CandidateIndex

    items = [index] if isinstance(index, CandidateIndex) else list(index)
    out = {}
    for item in items:
        if not isinstance(item, CandidateIndex):
            raise ValueError(
                f"index must be a tf_mmcl.retrieval.CandidateIndex or a list of them, got {type(item).__name__}."
            )
        if item.modality in out:
            raise ValueError(f"Two indexes for modality {item.modality!r}; pass one per candidate modality.")
        for key, want in (
            ("objective", model.objective.name),
            ("modalities", list(model.modalities)),
            ("embedding_dim", model.embedding_dim),
        ):
            got = item.model.objective.name if key == "objective" else getattr(item.model, key)
            got = list(got) if key == "modalities" else got
            if got != want:
                raise ValueError(
                    f"The index of {item.modality!r} was built with a model of {key}={got!r}; "
                    f"the exported model has {want!r}."
                )
        out[item.modality] = item
    return out


def add_retrieval_endpoints(archive, model, specs, indexes, k, partial_queries):
    """Adds a ``retrieve_*`` endpoint per candidate index and query subset; returns their names.

    Args:
        archive: the ``keras.export.ExportArchive`` being built.
        model: the model.
        specs: dict modality -> input ``tf.TensorSpec``.
        indexes: dict candidate modality -> CandidateIndex (from :func:`check_indexes`).
        k: top-k per query row (capped at each index's size).
        partial_queries: also add the ``_from_<q...>`` subsets.

    Returns:
        list of (signature name, candidate modality, query modalities).
    """
    from tf_mmcl.ops import topk

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"retrieve_k must be an int >= 1, got {k!r}.")
    objective = model.objective  # reduces the queries to one vector (exactly or as a proxy)
    added = []
    collection = []
    for c, index in indexes.items():
        kk = min(int(k), index.num_candidates)
        emb_var = tf.Variable(index.embeddings, trainable=False, name=f"retrieval_{c}_embeddings")
        ids = index.ids
        ids_var = tf.Variable(
            ids.astype(np.int64) if ids.dtype.kind in "iu" else ids.astype(str).astype(object),
            trainable=False,
            name=f"retrieval_{c}_ids",
            dtype=tf.int64 if ids.dtype.kind in "iu" else tf.string,
        )
        collection += [emb_var, ids_var]
        num, dim = index.embeddings.shape
        for queries in retrieval_query_subsets(model, c, partial_queries):
            exact = objective.reduces_exactly(model, list(queries))

            retrieve = _make_retrieve(model, objective, topk, c, queries, exact, emb_var, ids_var, kk, num, dim)
            name = retrieval_signature_name(model, c, queries)
            archive.add_endpoint(name, retrieve, input_signature=[{q: specs[q] for q in queries}])
            added.append((name, c, queries))
    if collection:
        archive.add_variable_collection("retrieval_index", collection)
    return added


def _make_retrieve(model, objective, topk, c, queries, exact, emb_var, ids_var, k, num, dim):
    """The endpoint function (a closure: variables must not become traced arguments)."""

    def retrieve(inputs):
        features = model._features({q: inputs[q] for q in queries}, training=False)
        emb = {n: tf.cast(e, tf.float32) for n, e in model._embed_features(features, training=False).items()}
        fused = model._fused(features, training=False)
        scale = tf.cast(model.logit_scale.value(), tf.float32)
        if exact:
            vec = objective.reduce_queries(model, c, emb, fused, {}) * scale
            scores, pos = topk.blocked_top_k(vec, emb_var, k)
        else:

            def score_block(start, size):
                block = tf.slice(emb_var, [start, 0], [size, dim])
                s = model.score_embeddings(emb, c, block, fused_embeddings=fused or None)
                return tf.cast(s, tf.float32) * scale

            scores, pos = topk.streaming_top_k(score_block, num, k, block_size=_MODEL_SCORE_BLOCK)
        return {"scores": scores, "ids": tf.gather(ids_var, pos)}

    return retrieve

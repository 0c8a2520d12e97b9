"""Head-only training on cached features, and putting the trained heads back on the backbones.

:func:`head_model` builds a :class:`~tf_mmcl.models.MultimodalContrastiveModel` whose
"encoders" are :class:`CachedFeatures` pass-throughs, so ``fit`` trains only what sits on top
of the encoders (projection heads, logit scale, ConFu fusion heads, the Gated Symile gate) on
the features of :func:`tf_mmcl.hub.features.read_features`. :func:`compose_with_encoders`
returns the same model with the real encoders in front, the trained head weights copied over:
it takes raw inputs, so ``export_for_serving`` serves raw token ids, images and log-mels.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.models import MultimodalContrastiveModel

__all__ = ["CachedFeatures", "compose_with_encoders", "head_model"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
class CachedFeatures(keras.layers.Layer):
    """Pass-through "encoder" for precomputed features ``(N, feature_dim)``.

    Args:
        feature_dim: width of the cached features.
        encoder: the manifest's description of the encoder that produced them (kept so that
            :func:`compose_with_encoders` can check it gets the same encoder back).
        **kwargs: ``keras.layers.Layer`` arguments.

    Example:
        >>> import numpy as np
        >>> CachedFeatures(4)(np.ones((2, 4), "float32")).shape
        TensorShape([2, 4])
    """

    def __init__(self, feature_dim, encoder=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive int, got {feature_dim!r}.")
        self.feature_dim = feature_dim
        self.encoder = None if encoder is None else dict(encoder)

    def build(self, input_shape):
        if len(input_shape) != 2 or (input_shape[-1] is not None and input_shape[-1] != self.feature_dim):
            raise ValueError(
                f"Layer '{self.name}' takes cached features (N, {self.feature_dim}); "
                f"received shape {tuple(input_shape)}."
            )
        self.built = True

    def call(self, inputs):
        return ops.cast(inputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"feature_dim": self.feature_dim, "encoder": self.encoder})
        return config


def head_model(manifest, embedding_dim, objective="symile", modalities=None, **model_kwargs):
    """A contrastive model over the cached features a manifest describes.

    Args:
        manifest: the dict of :func:`tf_mmcl.hub.features.load_manifest`.
        embedding_dim: width of the shared embedding space.
        objective: a registered objective name (``tf_mmcl.objectives.names()``) or instance.
        modalities: order of the modalities (default: the manifest's, sorted).
        **model_kwargs: further ``MultimodalContrastiveModel`` arguments.

    Returns:
        an unbuilt ``MultimodalContrastiveModel`` (fit it on ``read_features(...)``).
    """
    encoders = manifest["encoders"]
    modalities = list(modalities or sorted(encoders))
    unknown = sorted(set(modalities) - set(encoders))
    if unknown:
        raise ValueError(f"modalities {unknown} are not in the features ({sorted(encoders)}).")
    passthrough = tuple(model_kwargs.pop("passthrough_keys", ())) + tuple(manifest["keep_keys"]) + ("index",)
    heads = {m: CachedFeatures(encoders[m]["feature_dim"], encoder=encoders[m], name=f"cached_{m}") for m in modalities}
    return MultimodalContrastiveModel(
        heads, embedding_dim, objective=objective, passthrough_keys=passthrough + ("label", "labels"), **model_kwargs
    )


def compose_with_encoders(trained, encoders, sample_inputs, check_fingerprints=True):
    """``trained``'s heads on top of real encoders: a model that takes raw inputs.

    Args:
        trained: a built ``MultimodalContrastiveModel`` (typically from :func:`head_model`).
        encoders: dict modality -> encoder layer (e.g. ``BackboneEncoder.from_preset``) for
            every modality of ``trained``.
        sample_inputs: dict modality -> a raw batch, to build the new model (its shapes become
            the serving shapes).
        check_fingerprints: when ``trained``'s encoders are :class:`CachedFeatures`, require each
            new encoder to produce exactly the cached features (same preset, pooling, dtype and
            weights, by :func:`~tf_mmcl.hub.features.encoder_signature`).

    Returns:
        the new built ``MultimodalContrastiveModel``, sharing no variables with ``trained``.
    """
    from tf_mmcl.hub.features import encoder_signature

    missing = sorted(set(trained.modalities) - set(encoders))
    if missing:
        raise ValueError(f"compose_with_encoders needs an encoder for every modality; missing {missing}.")
    for m in trained.modalities:
        old = trained.encoders[m]
        if isinstance(old, CachedFeatures) and old.encoder and check_fingerprints:
            new = encoder_signature(encoders[m])
            diffs = [
                f"{k}: {old.encoder.get(k)!r} (features) vs {v!r} (encoder)"
                for k, v in new.items()
                if old.encoder.get(k) != v
            ]
            if diffs:
                raise ValueError(
                    f"The encoder for {m!r} is not the one that produced the cached features: {'; '.join(diffs)}."
                )
    config = trained.get_config()
    config.pop("encoders")
    config.pop("name", None)
    composed = MultimodalContrastiveModel({m: encoders[m] for m in trained.modalities}, **config)
    composed({m: sample_inputs[m] for m in trained.modalities})
    pairs = [(trained.projections[m], composed.projections[m]) for m in trained.modalities]
    pairs.append((trained.logit_scale, composed.logit_scale))
    pairs += list(zip(trained.objective_layers(), composed.objective_layers()))  # fusion heads, gate
    for src, dst in pairs:
        dst.set_weights(src.get_weights())
    return composed

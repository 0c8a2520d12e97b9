"""Fine-tuning pretrained backbones end to end: a lower learning rate for backbone weights.

Pretrained backbones are usually fine-tuned with a smaller step than the freshly initialised
heads. :func:`scale_backbone_learning_rate` makes any Keras optimizer scale the learning rate
of every :class:`~tf_mmcl.layers.BackboneEncoder` backbone variable by ``multiplier`` (the
heads, attention-pooling queries and logit scale keep the full rate). The scaled rate follows
the optimizer's schedule. Weight decay (AdamW's ``weight_decay``) is applied by Keras with the
unscaled rate.

Other levers when a batch does not fit: Keras' own ``gradient_accumulation_steps=k`` on the
optimizer (one update every ``k`` batches; note that contrastive negatives still come from
each batch only), ``trainable_blocks=k`` on the encoders (only the last blocks train: less
activation memory for gradients), and mixed precision
(``keras.mixed_precision.set_global_policy("mixed_bfloat16")`` before building the encoders).
"""

from __future__ import annotations

import keras

__all__ = ["scale_backbone_learning_rate"]


def scale_backbone_learning_rate(optimizer, model, multiplier):
    """Scales the learning rate of ``model``'s backbone variables by ``multiplier``, in place.

    Call it after building the model and before ``fit`` (the variables are looked up now).
    Works through ``keras.optimizers.LossScaleOptimizer`` (mixed_float16). The setting lives
    on the optimizer object, not in its saved config: call it again after reloading a model
    to continue fine-tuning.

    Args:
        optimizer: a Keras optimizer (e.g. ``keras.optimizers.AdamW(1e-4)``).
        model: a built ``MultimodalContrastiveModel`` (or any model whose ``encoders`` dict
            holds ``BackboneEncoder`` layers), or a list of ``BackboneEncoder`` layers.
        multiplier: float in ``(0, 1]`` typically, e.g. ``0.1``: backbones learn 10x slower.

    Returns:
        the optimizer.

    Example:
        >>> import keras
        >>> from tf_mmcl.layers import BackboneEncoder
        >>> inp = keras.Input((4, 3))
        >>> enc = BackboneEncoder(keras.Model(inp, keras.layers.Dense(2)(inp)))
        >>> opt = scale_backbone_learning_rate(keras.optimizers.SGD(0.1), [enc], 0.1)
        >>> len(opt.learning_rate_multipliers)
        2
    """
    from tf_mmcl.layers.backbone import BackboneEncoder

    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier <= 0:
        raise ValueError(f"multiplier must be a positive number, got {multiplier!r}.")
    encoders = model if isinstance(model, (list, tuple)) else list(getattr(model, "encoders", {}).values())
    backbones = [e for e in encoders if isinstance(e, BackboneEncoder)]
    if not backbones:
        raise ValueError(
            "scale_backbone_learning_rate found no BackboneEncoder in the model's encoders: nothing to scale."
        )
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps one
    if getattr(inner, "learning_rate_multipliers", None) is not None:
        raise ValueError("This optimizer's backbone learning rate is already scaled.")
    multipliers = {}
    for enc in backbones:
        for v in enc.backbone.trainable_weights:
            multipliers[inner._var_key(v)] = float(multiplier)
    original = inner.update_step

    def update_step(gradient, variable, learning_rate):
        scale = multipliers.get(inner._var_key(variable))
        if scale is not None:
            learning_rate = keras.ops.multiply(learning_rate, keras.ops.cast(scale, learning_rate.dtype))
        return original(gradient, variable, learning_rate)

    inner.update_step = update_step
    inner.learning_rate_multipliers = multipliers
    if inner is not optimizer:
        optimizer.learning_rate_multipliers = multipliers
    return optimizer

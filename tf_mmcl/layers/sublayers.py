"""Helpers for layers that own sublayers: sequential ``build`` and activation serialisation."""

from __future__ import annotations

import keras

__all__ = ["build_in_sequence", "serialize_activation"]


def build_in_sequence(layers, input_shape):
    """Builds ``layers`` one after the other and returns the shape the last one produces.

    Each layer is built on the output shape of the one before it
    (``layer.compute_output_shape``), so a parent layer can build a stack of sublayers in its
    own ``build`` without calling them.

    Example:
        >>> import keras
        >>> stack = [keras.layers.Dense(8), keras.layers.Activation("relu"), keras.layers.Dense(3)]
        >>> build_in_sequence(stack, (None, 5))
        (None, 3)
        >>> tuple(stack[2].kernel.shape)
        (8, 3)
    """
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def serialize_activation(activation):
    """The serialisable form of a Keras activation identifier (name, callable or ``None``).

    Example:
        >>> serialize_activation("relu")
        'relu'
        >>> serialize_activation(None)
        'linear'
    """
    return keras.activations.serialize(keras.activations.get(activation))

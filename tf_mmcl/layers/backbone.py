"""``BackboneEncoder``: a pretrained (keras-hub) backbone, or any Keras model, as a modality encoder.

A tf_mmcl encoder maps one modality's raw input ``(N, ...)`` to features ``(N, D)``. keras-hub
backbones map dicts of model-specific inputs to token sequences; this layer bridges the two:

* **text** backbones (BERT, XLM-RoBERTa, DistilBERT, ...: a ``token_ids`` input) take the
  ``(N, L)`` int32 token-id matrix; the layer derives ``padding_mask`` (``ids != padding_id``)
  and zero ``segment_ids`` when the backbone wants them. ``input_dtype`` is ``"int32"``, so the
  exported serving signatures take int32 ids.
* **image** backbones (ViT, CLIP's vision encoder: an ``images`` input) take ``(N, H, W, C)``
  float images, already through the preset's image converter (resizing, rescaling).
* **audio**: Whisper's encoder alone (the decoder is dropped, its weights are never tracked)
  takes log-mel features ``(N, T, num_mels)`` from the preset's audio converter.
* any other Keras model with one input is called as it is.

keras-hub is only needed for :meth:`BackboneEncoder.from_preset` and for loading a saved model
that holds a keras-hub backbone (``pip install "tf-mmcl[hub]"``, see docs/real_data.md); the
layer itself and ``import tf_mmcl`` work without it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re

import keras
from keras import ops

__all__ = ["BackboneEncoder", "POOLINGS", "KINDS", "require_keras_hub"]

POOLINGS = ("cls", "mean", "pooled", "attention", "none")
KINDS = ("text", "image", "audio", "generic")
_DEFAULT_POOLING = {"text": "mean", "image": "cls", "audio": "mean"}
_HUB_EXTRA_HINT = (
    "install the optional `hub` extra: `make install-hub`, or `pip install "
    '"tf-mmcl[hub]"` then `pip install --no-deps keras-hub==0.32.0 '
    "tensorflow-text~=2.21.0` (--no-deps keeps tensorflow-cpu; see docs/real_data.md)"
)
PRESETS_ENV = "TF_MMCL_PRESETS"
"""Environment variable naming a directory of downloaded presets (``<dir>/<preset name>/``)."""


def require_keras_hub(what="This"):
    """Imports and returns ``keras_hub``, or raises an ImportError naming the extra to install."""
    try:
        import keras_hub
    except ImportError as e:  # the message is the whole point of this function
        raise ImportError(f"{what} needs keras-hub, which is not installed: {_HUB_EXTRA_HINT}.") from e
    return keras_hub


# ---------------------------------------------------------------------------------- backbones
def _input_names(backbone):
    inputs = getattr(backbone, "input", None)
    return sorted(inputs) if isinstance(inputs, dict) else None


def _detect_kind(backbone):
    names = _input_names(backbone) or []
    if "token_ids" in names:
        return "text"
    if "images" in names:
        return "image"
    if "encoder_features" in names:
        return "audio"
    if names:
        return "generic"
    shape = getattr(backbone, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4:
        return "image"
    return "generic"


def _whisper_encoder(backbone):
    """The encoder half of a (keras-hub) Whisper backbone as a functional model."""
    outputs = backbone.output
    if not isinstance(outputs, dict) or "encoder_sequence_output" not in outputs:
        raise ValueError(
            "A backbone with an `encoder_features` input must have an "
            "`encoder_sequence_output` output (keras-hub's WhisperBackbone)."
        )
    return keras.Model(
        backbone.input["encoder_features"], outputs["encoder_sequence_output"], name=f"{backbone.name}_encoder"
    )


def _children(layer):
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _is_block(layer):
    # A transformer block owns an attention layer directly (ViT, CLIP, BERT, XLM-R, Whisper...).
    return any("Attention" in type(c).__name__ for c in _children(layer))


def _walk(layer, out):
    """Depth-first, in call order: blocks as units, other layers down to the leaves.

    Entries are ``[kind, layer, end]``; a ``"container"`` entry (a layer that has sublayers
    and is not a block) precedes its contents and ``end`` is the index just past them.
    """
    for child in _children(layer):
        if _is_block(child):
            out.append(["block", child, len(out) + 1])
        elif _children(child):
            entry = ["container", child, None]
            out.append(entry)
            _walk(child, out)
            entry[2] = len(out)
        else:
            out.append(["leaf", child, len(out) + 1])
    return out


def _freeze(layer):
    # Setting `trainable` on the layer alone is not enough for a deserialised functional model:
    # sublayers built after their parent's config set `trainable=False` keep trainable
    # variables. Freeze every sublayer and variable explicitly.
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        sub.trainable = False
    for v in layer.weights:
        v.trainable = False


def transformer_blocks(backbone):
    """The backbone's transformer blocks, first to last (layers that own an attention layer)."""
    return [layer for kind, layer, _ in _walk(backbone, []) if kind == "block"]


def _max_audio_frames(encoder):
    # Whisper's encoder halves the frames (stride-2 conv) before a fixed position table.
    for layer in encoder.layers:
        if type(layer).__name__ == "PositionEmbedding" and hasattr(layer, "sequence_length"):
            return 2 * int(layer.sequence_length)
    return None


# ---------------------------------------------------------------------------------- layer
@keras.saving.register_keras_serializable(package="tf_mmcl")
class BackboneEncoder(keras.layers.Layer):
    """Wraps a keras-hub backbone (or any Keras model) as a modality encoder ``(N, ...) -> (N, D)``.

    Args:
        backbone: a built Keras model: a keras-hub ``Backbone`` (text, image or Whisper) or any
            functional model. A Whisper backbone is reduced to its encoder; a dual encoder
            (CLIP / SigLIP presets) to its vision tower (its text tower with ``kind="text"``).
        pooling: how token sequences ``(N, T, D)`` become ``(N, D)``:
            ``"cls"`` (token 0), ``"mean"`` (mean over the tokens, padding excluded for text),
            ``"pooled"`` (the backbone's own ``pooled_output``, e.g. BERT's), ``"attention"``
            (a learned query attends over the tokens, padding excluded; initialised to equal
            ``"mean"``), or ``"none"`` (the backbone already returns ``(N, D)``). ``None``: the
            default of the backbone kind: ``"pooled"`` for text backbones that have it, else
            ``"mean"`` for text and audio, ``"cls"`` for images, ``"none"`` for a model whose
            output is ``(N, D)``.
        padding_id: token id of padding for text backbones (default 0; XLM-RoBERTa's is 1).
        trainable_blocks: ``None``: the whole backbone trains (fine-tuning); ``0``: the
            backbone is frozen and always runs in inference mode (feature extraction, cached
            features); ``k > 0``: only the last ``k`` transformer blocks and the layers after
            them (final norm, pooler) train.
        kind: ``"text"``, ``"image"``, ``"audio"`` or ``"generic"``; ``None`` detects it from
            the backbone's inputs (saved in the config).
        preset: the preset the backbone came from (informational; kept in the config and
            written into feature manifests).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input: text: int token ids ``(N, L)``; image: ``(N, H, W, C)``; audio: ``(N, T, mels)``.
    Output: ``(N, D)`` features in the layer's compute dtype.

    Example:
        >>> import numpy as np, keras
        >>> inp = keras.Input((5, 3))
        >>> backbone = keras.Model(inp, keras.layers.Dense(4)(inp))
        >>> encoder = BackboneEncoder(backbone, pooling="mean")
        >>> encoder(np.ones((2, 5, 3), "float32")).shape
        TensorShape([2, 4])
    """

    def __init__(self, backbone, pooling=None, padding_id=0, trainable_blocks=None, kind=None, preset=None, **kwargs):
        if isinstance(backbone, dict):  # from a config
            backbone = _deserialize_backbone(backbone)
        if not isinstance(backbone, keras.Model):
            raise ValueError(
                f"`backbone` must be a Keras model (e.g. a keras-hub Backbone), got {type(backbone).__name__}."
            )
        if hasattr(backbone, "vision_encoder") and hasattr(backbone, "text_encoder"):
            # A dual encoder (keras-hub CLIP / SigLIP presets): its image tower by default.
            backbone = backbone.text_encoder if kind == "text" else backbone.vision_encoder
        if kind is None:
            kind = _detect_kind(backbone)
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS} or None, got {kind!r}.")
        # Token ids are integers: no input autocasting (a float input is rejected in call).
        kwargs.pop("autocast", None)
        super().__init__(autocast=kind != "text", **kwargs)
        if _input_names(backbone) and "encoder_features" in _input_names(backbone):
            backbone = _whisper_encoder(backbone)
        self.kind = kind
        self.backbone = backbone
        self._output_keys = sorted(backbone.output) if isinstance(backbone.output, dict) else None
        if kind == "text":
            names = _input_names(backbone)
            if names is None:
                raise ValueError("A text backbone must take a dict input with `token_ids`.")
            unknown = sorted(set(names) - {"token_ids", "padding_mask", "segment_ids"})
            if unknown:
                raise ValueError(
                    f"Text backbone input(s) {unknown} cannot be derived from token "
                    "ids; BackboneEncoder supplies token_ids, padding_mask and "
                    "segment_ids only."
                )
        if isinstance(padding_id, bool) or not isinstance(padding_id, int) or padding_id < 0:
            raise ValueError(f"`padding_id` must be an int >= 0, got {padding_id!r}.")
        self.padding_id = padding_id
        self.pooling = self._validate_pooling(pooling)
        if trainable_blocks is not None and (
            isinstance(trainable_blocks, bool) or not isinstance(trainable_blocks, int) or trainable_blocks < 0
        ):
            raise ValueError(
                f"`trainable_blocks` must be None (train everything), 0 (frozen) "
                f"or a positive int, got {trainable_blocks!r}."
            )
        self.trainable_blocks = trainable_blocks
        self.preset = None if preset is None else str(preset)
        self._apply_freezing()

    # ------------------------------------------------------------------ configuration
    def _sequence_output_shape(self):
        out = self.backbone.output
        if isinstance(out, dict):
            if "sequence_output" not in out:
                raise ValueError(f"The backbone's outputs {sorted(out)} have no `sequence_output`.")
            out = out["sequence_output"]
        return tuple(out.shape)

    def _validate_pooling(self, pooling):
        has_pooled = self._output_keys is not None and "pooled_output" in self._output_keys
        if pooling is None:
            if has_pooled:
                return "pooled"
            if self.kind in _DEFAULT_POOLING:
                return _DEFAULT_POOLING[self.kind]
            return "none" if len(self._sequence_output_shape()) == 2 else "mean"
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS} or None, got {pooling!r}.")
        if pooling == "pooled" and not has_pooled:
            raise ValueError(
                f"pooling='pooled' needs a backbone with a `pooled_output` (e.g. "
                f"BERT); this {self.kind} backbone has outputs "
                f"{self._output_keys or 'one tensor'}: use 'cls', 'mean' or "
                "'attention'."
            )
        rank = len(self._sequence_output_shape())
        if pooling == "none" and rank != 2:
            raise ValueError(
                f"pooling='none' needs a backbone output of rank 2 (N, D); this one "
                f"is {self._sequence_output_shape()}: use 'cls', 'mean' or 'attention'."
            )
        if pooling in ("cls", "mean", "attention") and rank != 3:
            raise ValueError(
                f"pooling={pooling!r} needs a sequence output (N, T, D); this "
                f"backbone returns {self._sequence_output_shape()}: use 'none'."
            )
        return pooling

    def _apply_freezing(self):
        self.backbone.trainable = True
        k = self.trainable_blocks
        if k is None:
            return
        if k == 0:
            _freeze(self.backbone)
            return
        walk = _walk(self.backbone, [])
        blocks = [i for i, (kind, _, _) in enumerate(walk) if kind == "block"]
        if k > len(blocks):
            raise ValueError(
                f"trainable_blocks={k} but the backbone has {len(blocks)} "
                "transformer block(s); use None to train all of it."
            )
        first = blocks[-k]
        # Everything that runs wholly before the first trainable block is frozen (embeddings,
        # earlier blocks, containers like ViT's patch embedding with its own class token).
        for _kind, layer, end in walk[:first]:
            if end <= first:
                _freeze(layer)

    @property
    def frozen(self):
        """True when the whole backbone is frozen (``trainable_blocks=0``)."""
        return self.trainable_blocks == 0

    @property
    def input_dtype(self):
        # Token ids stay int32 whatever the dtype policy (read by the serving signatures).
        return "int32" if self.kind == "text" else "float32"

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        out = self.backbone.output
        if self.pooling == "pooled":
            return int(out["pooled_output"].shape[-1])
        return int(self._sequence_output_shape()[-1])

    # ------------------------------------------------------------------ keras
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if self.kind == "text":
            if len(input_shape) != 2:
                raise ValueError(
                    f"Layer '{self.name}' (text backbone) expects token ids (N, L); received input shape {input_shape}."
                )
            limit = getattr(self.backbone, "max_sequence_length", None)
            if limit is not None and input_shape[1] is not None and input_shape[1] > limit:
                raise ValueError(
                    f"Layer '{self.name}': sequences of {input_shape[1]} tokens exceed "
                    f"the backbone's max_sequence_length={limit}; truncate them "
                    "(the preset's preprocessor takes sequence_length=...)."
                )
        if self.kind == "audio" and len(input_shape) == 3 and input_shape[1] is not None:
            limit = _max_audio_frames(self.backbone)
            if limit is not None and input_shape[1] > limit:
                raise ValueError(
                    f"Layer '{self.name}': {input_shape[1]} log-mel frames exceed the "
                    f"encoder's {limit}; pad or crop to {limit} frames (the preset's "
                    "audio converter does)."
                )
        if self.pooling == "attention":
            self.attention_query = self.add_weight(
                shape=(self.feature_dim,), initializer="zeros", name="attention_query"
            )
        self.built = True

    def _backbone_inputs(self, inputs):
        if self.kind == "text":
            if "int" not in keras.backend.standardize_dtype(inputs.dtype):
                raise ValueError(
                    f"Layer '{self.name}' expects integer token ids (N, L); received "
                    f"dtype {inputs.dtype}. Tokenise first (the preset's tokenizer)."
                )
            ids = ops.cast(inputs, "int32")
            feed = {"token_ids": ids}
            names = _input_names(self.backbone)
            if "padding_mask" in names:
                feed["padding_mask"] = ops.cast(ops.not_equal(ids, self.padding_id), "int32")
            if "segment_ids" in names:
                feed["segment_ids"] = ops.zeros_like(ids)
            return feed
        names = _input_names(self.backbone)
        if names is not None:
            if len(names) != 1:
                raise ValueError(f"Backbone inputs {names} cannot all be fed from one modality.")
            return {names[0]: inputs}
        return inputs

    def _mask(self, inputs, length):
        if self.kind == "text":
            return ops.not_equal(ops.cast(inputs, "int32"), self.padding_id)
        return None

    def call(self, inputs, training=None):
        if self.frozen:
            training = False  # frozen: dropout off, statistics fixed (matches cached features)
        out = self.backbone(self._backbone_inputs(inputs), training=training)
        if self.pooling == "pooled":
            return ops.cast(out["pooled_output"], self.compute_dtype)
        if isinstance(out, dict):
            out = out["sequence_output"]
        if self.pooling == "none":
            return ops.cast(out, self.compute_dtype)
        if self.pooling == "cls":
            return ops.cast(out[:, 0, :], self.compute_dtype)
        x = ops.cast(out, "float32")  # pool in float32 (sums / softmax under mixed precision)
        mask = self._mask(inputs, ops.shape(x)[1])
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], "bool")
        if self.pooling == "mean":
            w = ops.cast(mask, "float32")[:, :, None]
            pooled = ops.sum(x * w, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)
        else:  # attention: one learned query, scaled dot product over the tokens
            q = ops.cast(self.attention_query, "float32")
            logits = ops.einsum("ntd,d->nt", x, q) / math.sqrt(self.feature_dim)
            logits = ops.where(mask, logits, -1e9)
            weights = ops.softmax(logits, axis=-1) * ops.cast(mask, "float32")
            weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
            pooled = ops.einsum("nt,ntd->nd", weights, x)
        return ops.cast(pooled, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "pooling": self.pooling,
                "padding_id": self.padding_id,
                "trainable_blocks": self.trainable_blocks,
                "kind": self.kind,
                "preset": self.preset,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialisation consumes the nested dicts
        config["backbone"] = _deserialize_backbone(config["backbone"])
        return cls(**config)

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, preset, pooling=None, padding_id=None, trainable_blocks=None, dtype=None, **kwargs):
        """Loads a keras-hub backbone preset and wraps it.

        Args:
            preset: a local preset directory (written by ``Backbone.save_to_preset`` or
                downloaded from Kaggle / Hugging Face), a preset name (``"vit_base_patch16_224_imagenet"``)
                or a ``kaggle://`` / ``hf://`` handle. A bare name is first looked up as
                ``$TF_MMCL_PRESETS/<name>``; without network access a name that is not on disk
                fails with a message saying where to put it.
            pooling, trainable_blocks: see the class.
            padding_id: text presets: the padding token id; ``None`` reads it from the
                preset's tokenizer when the preset directory has one (XLM-RoBERTa: 1), else 0.
            dtype: the backbone's dtype policy (e.g. ``"mixed_float16"``; default: the global
                policy).
            **kwargs: ``BackboneEncoder`` layer arguments (``name``, ...).

        Returns:
            ``BackboneEncoder``.

        Raises:
            ImportError: without keras-hub (names the extra to install).
            ValueError: a preset that cannot be found or loaded.
        """
        keras_hub = require_keras_hub("BackboneEncoder.from_preset")
        source = resolve_preset(preset)
        backbone = _load_backbone(keras_hub, source, preset, dtype)
        if dtype is not None:
            kwargs.setdefault("dtype", dtype)
        if padding_id is None:
            padding_id = _preset_padding_id(keras_hub, source)
        return cls(
            backbone,
            pooling=pooling,
            padding_id=padding_id,
            trainable_blocks=trainable_blocks,
            preset=str(preset),
            **kwargs,
        )


def resolve_preset(preset):
    """A local directory for ``preset`` if one exists (as given, or under ``$TF_MMCL_PRESETS``);
    otherwise ``preset`` unchanged (a name or handle keras-hub downloads)."""
    preset = os.fspath(preset)
    if os.path.isdir(preset):
        return preset
    root = os.environ.get(PRESETS_ENV)
    if root and re.match(r"^[A-Za-z0-9_.\-]+$", preset) and os.path.isdir(os.path.join(root, preset)):
        return os.path.join(root, preset)
    if os.sep in preset and "://" not in preset:
        raise ValueError(f"Preset directory {preset!r} does not exist.")
    return preset


def _load_backbone(keras_hub, source, preset, dtype):
    kwargs = {} if dtype is None else {"dtype": dtype}
    if os.path.isdir(source):
        if not os.path.exists(os.path.join(source, "config.json")):
            raise ValueError(
                f"{source!r} is not a keras-hub preset directory (no config.json); "
                "write one with backbone.save_to_preset(dir)."
            )
        return keras_hub.models.Backbone.from_preset(source, **kwargs)
    try:
        return keras_hub.models.Backbone.from_preset(source, **kwargs)
    except Exception as e:  # network, auth or unknown-name failures all end here
        name = re.sub(r"^.*[/:]", "", str(preset))
        raise ValueError(
            f"Could not load preset {preset!r} ({type(e).__name__}; no network?): download it "
            f"once where there is network (keras_hub.models.Backbone.from_preset({preset!r})"
            f".save_to_preset('{name}')), copy the directory here and pass its path, or put it "
            f"at ${PRESETS_ENV}/{name}."
        ) from None


def _preset_padding_id(keras_hub, source):
    if not os.path.exists(os.path.join(source, "tokenizer.json")):
        return 0
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(source)
    pad = getattr(tokenizer, "pad_token_id", None)
    return 0 if pad is None else int(pad)


def _deserialize_backbone(config):
    if "keras_hub" in json.dumps(config, default=str):
        require_keras_hub("Loading a BackboneEncoder that holds a keras-hub backbone")
    return keras.saving.deserialize_keras_object(config)

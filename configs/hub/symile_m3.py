"""Symile-M3's encoders by keras-hub preset name: CLIP ViT-B/16 image, Whisper-base audio,
XLM-RoBERTa-base text; features cached once, then projection heads trained with Symile.

Put the presets on disk first (no network at run time): see docs/real_data.md, e.g.
``export TF_MMCL_PRESETS=/data/presets`` holding ``clip_vit_base_patch16/``,
``whisper_base_multi/`` and ``xlm_roberta_base_multi/``. Then::

    python tools/extract_features.py --config configs/hub/symile_m3.py \
        --config.data.tfds=<your dataset> --config.features_dir=/data/features/m3
    python tools/train_heads.py --config configs/hub/symile_m3.py \
        --config.features_dir=/data/features/m3 --workdir /data/runs/m3 --export_dir /data/serving
"""

import ml_collections


def encoder(preset, key, pooling="", padding_id=0, sequence_length=0):
    return ml_collections.ConfigDict(
        {"preset": preset, "key": key, "pooling": pooling, "padding_id": padding_id, "sequence_length": sequence_length}
    )


def get_config():
    config = ml_collections.ConfigDict()
    config.name = "symile_m3"
    config.encoders = ml_collections.ConfigDict(
        {
            # CLIP's vision tower, [CLS] token (CLIP's own pooling before its projection).
            "image": encoder("clip_vit_base_patch16", "image", pooling="cls"),
            # Whisper-base encoder on 80-bin log-mels of 30 s (3000 frames), mean over frames.
            "audio": encoder("whisper_base_multi", "audio", pooling="mean"),
            # XLM-RoBERTa's padding id is 1 (<pad>); mean over the non-padding tokens.
            "text": encoder("xlm_roberta_base_multi", "text", pooling="mean", padding_id=1, sequence_length=64),
        }
    )
    config.data = ml_collections.ConfigDict(
        {"tfds": "", "tfrecords": "", "split": "train", "data_dir": "", "keep_keys": []}
    )
    config.extract = ml_collections.ConfigDict({"batch_size": 32, "shard_size": 1024, "precision": "float32"})
    config.features_dir = ""
    config.heads = ml_collections.ConfigDict(
        {
            "objective": "symile",
            "embedding_dim": 256,
            "epochs": 10,
            "batch_size": 256,
            "learning_rate": 1e-3,
            "shuffle": 10000,
            "seed": 0,
        }
    )
    return config

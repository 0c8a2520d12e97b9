"""The Symile-M3 setup of ``symile_m3.py`` at toy size: randomly initialised presets named
``tf_mmcl_tiny_clip_vision``, ``tf_mmcl_tiny_whisper`` and ``tf_mmcl_tiny_xlm_roberta`` under
``$TF_MMCL_PRESETS`` (the tests save them with ``tf_mmcl.hub.save_random_preset``), data from
TFRecords of ``tf_mmcl.hub.pipeline.write_tensor_records``::

    python tools/extract_features.py --config configs/hub/symile_m3_tiny.py \
        --config.data.tfrecords='workdir/trio/*.tfrecord' --config.features_dir=workdir/trio_features
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "hub_symile_m3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "symile_m3.py")
)
hub_symile_m3 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hub_symile_m3)


def get_config():
    config = hub_symile_m3.get_config()
    config.name = "symile_m3_tiny"
    config.encoders.image.preset = "tf_mmcl_tiny_clip_vision"
    config.encoders.audio.preset = "tf_mmcl_tiny_whisper"
    config.encoders.text.preset = "tf_mmcl_tiny_xlm_roberta"
    config.encoders.text.sequence_length = 6
    config.data.keep_keys = ["label"]
    config.extract.batch_size = 4
    config.extract.shard_size = 8
    config.heads.update({"embedding_dim": 8, "epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "shuffle": 16})
    return config

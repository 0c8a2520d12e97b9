"""clip on the misalignment benchmark (settings: tf_mmcl.training.BENCHMARKS["misalignment"]).

    python tools/train.py --config configs/misalignment_clip.py --workdir workdir/misalignment_clip [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("misalignment", "clip")
    return config

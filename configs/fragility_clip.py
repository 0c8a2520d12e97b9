"""clip on the fragility benchmark (settings: tf_mmcl.training.BENCHMARKS["fragility"]).

    python tools/train.py --config configs/fragility_clip.py --workdir workdir/fragility_clip [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("fragility", "clip")
    return config

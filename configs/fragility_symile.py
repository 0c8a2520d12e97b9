"""symile on the fragility benchmark (settings: tf_mmcl.training.BENCHMARKS["fragility"]).

    python tools/train.py --config configs/fragility_symile.py --workdir workdir/fragility_symile [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("fragility", "symile")
    return config

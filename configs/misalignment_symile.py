"""symile on the misalignment benchmark (settings: tf_mmcl.training.BENCHMARKS["misalignment"]).

    python tools/train.py --config configs/misalignment_symile.py --workdir workdir/misalignment_symile [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("misalignment", "symile")
    return config

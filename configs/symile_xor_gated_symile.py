"""gated_symile on the symile_xor benchmark (settings: tf_mmcl.training.BENCHMARKS["symile_xor"]).

    python tools/train.py --config configs/symile_xor_gated_symile.py --workdir workdir/symile_xor_gated_symile [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("symile_xor", "gated_symile")
    config.epochs = 6
    return config

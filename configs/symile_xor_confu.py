"""confu on the symile_xor benchmark (settings: tf_mmcl.training.BENCHMARKS["symile_xor"]).

    python tools/train.py --config configs/symile_xor_confu.py --workdir workdir/symile_xor_confu [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("symile_xor", "confu")
    config.epochs = 6
    return config

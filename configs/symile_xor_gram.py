"""gram on the symile_xor benchmark (settings: tf_mmcl.training.BENCHMARKS["symile_xor"]).

    python tools/train.py --config configs/symile_xor_gram.py --workdir workdir/symile_xor_gram [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("symile_xor", "gram")
    return config

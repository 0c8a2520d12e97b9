"""symile on the confu_xor benchmark (settings: tf_mmcl.training.BENCHMARKS["confu_xor"]).

    python tools/train.py --config configs/confu_xor_symile.py --workdir workdir/confu_xor_symile [--config.epochs=10]
"""

from tf_mmcl.training import benchmark_config


def get_config():
    config = benchmark_config("confu_xor", "symile")
    return config

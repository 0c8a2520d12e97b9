"""clip on m3_digits: the text from (image scan, spoken language).

Settings: tf_mmcl.training.BENCHMARKS["m3_digits"].

Reads m3_digits/default from its tfds build under ~/tensorflow_datasets (built on first use: needs
espeak-ng, or --config.dataset.params.clip_source=<clip library directory>; docs/m3_digits.md):

    python tools/make_dataset.py m3_digits
    python tools/train.py --config configs/m3_digits_clip.py --workdir workdir/m3_clip
"""

from tf_mmcl.training import benchmark_config


def get_config():
    return benchmark_config("m3_digits", "clip")

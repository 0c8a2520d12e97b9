"""Renders an ``m3_digits`` clip library with espeak-ng (the cached test sample, or any config's).

Usage::

    python -m tf_mmcl.datasets.m3_digits --config tiny --out tests/datasets/data/m3_digits_clips
"""

from __future__ import annotations

import os

from tf_mmcl.datasets.m3_digits.clips import render_clip_library
from tf_mmcl.datasets.m3_digits.m3_digits_dataset_builder import CONFIGS


def _main(argv=None):
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="Render an m3_digits clip library with espeak-ng.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--config", default="tiny", choices=sorted(CONFIGS), help="builder config whose clip plan to render"
    )
    parser.add_argument("--resampler", default="scipy", choices=("scipy", "tfio"))
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]
    manifest = render_clip_library(
        args.out, config.clip_plans(), resampler=args.resampler, max_seconds=config.max_clip_seconds
    )
    total = sum(os.path.getsize(os.path.join(args.out, r["file"])) for r in manifest["clips"])
    print(f"wrote {len(manifest['clips'])} clips ({total / 1024:.0f} KiB) to {args.out}")


if __name__ == "__main__":
    _main()

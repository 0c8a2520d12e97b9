"""``python -m benchmarks.contrastive [flags]``: the benchmark, or (``--worker``) one worker process."""

from benchmarks.contrastive.cli import main

if __name__ == "__main__":
    main()

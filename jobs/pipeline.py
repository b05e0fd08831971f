"""spark-submit entry point for the whole pipeline: the same code as `dlspark pipeline`."""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))

"""spark-submit entry point: events/ -> shards/ (training examples for Petastorm)."""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["shards", *sys.argv[1:]]))

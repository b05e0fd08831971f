"""spark-submit entry point for the train stage: the same code as `dlspark train`."""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

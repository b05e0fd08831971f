"""spark-submit entry point for the evaluate stage: the same code as `dlspark evaluate`."""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))

"""spark-submit entry point for demo data: the same code as `dlspark generate`.

spark-submit jobs/generate.py --config conf/cluster.yaml --out hdfs:///data/demo --orders 10000000
"""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))

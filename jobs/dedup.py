"""spark-submit entry point for the dedup stage: the same code as `dlspark dedup`.

spark-submit jobs/dedup.py --config conf/cluster.yaml --set data.root=hdfs:///data/dlspark
"""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["dedup", *sys.argv[1:]]))

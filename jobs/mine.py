"""spark-submit entry point for the mine stage: the same code as `dlspark mine`.

spark-submit jobs/mine.py --config conf/cluster.yaml --set data.root=hdfs:///data/dlspark
"""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["mine", *sys.argv[1:]]))

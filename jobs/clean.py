"""spark-submit entry point for the clean stage: the same code as `dlspark clean`.

spark-submit jobs/clean.py --config conf/cluster.yaml --set data.root=hdfs:///data/dlspark
"""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["clean", *sys.argv[1:]]))

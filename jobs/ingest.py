"""spark-submit entry point for the ingest stage: the same code as `dlspark ingest`.

spark-submit jobs/ingest.py --config conf/cluster.yaml --set data.root=hdfs:///data/dlspark
"""

import sys

from dlspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))

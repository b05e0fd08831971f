#!/usr/bin/env bash
# A Spark standalone worker in the foreground: start-worker.sh spark://MASTER:7077
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 spark://MASTER:PORT" >&2; exit 2; }
. "$(dirname "$0")/env.sh"
exec "$bin/spark-class" org.apache.spark.deploy.worker.Worker "$1" \
  --host "${SPARK_WORKER_HOST:-$(hostname)}" \
  --port "${SPARK_WORKER_PORT:-0}" \
  --webui-port "${SPARK_WORKER_WEBUI_PORT:-8081}" \
  --cores "${SPARK_WORKER_CORES:-2}" \
  --memory "${SPARK_WORKER_MEMORY:-3g}" \
  --work-dir "${SPARK_WORKER_DIR:-/tmp/spark-work}"

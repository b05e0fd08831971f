#!/usr/bin/env bash
# spark-submit one of dlspark's jobs to the standalone master: submit.sh JOB [dlspark options]
#   submit.sh pipeline --date 2026-01-14          (JOB: generate, ingest, ..., pipeline; see jobs/)
# The driver runs here (client mode: a standalone master runs Python apps only so); executors connect back to it
# at SPARK_DRIVER_HOST, so that name must resolve on the workers (docker-compose: the service's hostname).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 JOB [options]" >&2; exit 2; }
cd "$(dirname "$0")/.."
job=$1; shift
[ -f "jobs/$job.py" ] || { echo "submit.sh: no job jobs/$job.py" >&2; exit 2; }
. docker/env.sh
exec "$bin/spark-submit" \
  --master "${SPARK_MASTER_URL:-spark://spark-master:7077}" \
  --conf "spark.driver.host=${SPARK_DRIVER_HOST:-$(hostname)}" \
  --conf "spark.pyspark.python=$python" \
  --conf "spark.executor.memory=${SPARK_EXECUTOR_MEMORY:-2g}" \
  --conf "spark.ui.port=${SPARK_UI_PORT:-4040}" \
  "jobs/$job.py" --config "${DLSPARK_CONFIG:-conf/docker.yaml}" \
  --set "data.root=${DLSPARK_DATA:-/data/dlspark}" --set "spark.executor_python=$python" "$@"

#!/usr/bin/env bash
# docker-compose's scheduler service: `dlspark schedule` against the standalone master, every due day in order.
#   run-scheduler.sh [schedule options]     e.g. --once (one pass, then exit), --every 3600
# The driver runs here; executors connect back to it at SPARK_DRIVER_HOST (docker-compose: the service's hostname).
set -euo pipefail
cd "$(dirname "$0")/.."
. docker/env.sh
exec "$bin/dlspark" schedule --config "${DLSPARK_CONFIG:-conf/docker.yaml}" \
  --set "data.root=${DLSPARK_DATA:-/data/dlspark}" \
  --set "spark.master=${SPARK_MASTER_URL:-spark://spark-master:7077}" \
  --set "spark.executor_python=$python" \
  --set "spark.conf.spark.driver.host=${SPARK_DRIVER_HOST:-$(hostname)}" \
  --set "spark.conf.spark.ui.port=${SPARK_UI_PORT:-4040}" "$@"

#!/usr/bin/env bash
# A Spark standalone master in the foreground (docker-compose's spark-master; tests run it on loopback).
# Spark comes from dlspark's own environment (pyspark's spark-class), so master, workers and driver run one version.
set -euo pipefail
. "$(dirname "$0")/env.sh"
# The REST submission server (port 6066, on by default from Spark 4.1) takes jobs without authentication: off.
export SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false ${SPARK_MASTER_OPTS:-}"
exec "$bin/spark-class" org.apache.spark.deploy.master.Master \
  --host "${SPARK_MASTER_HOST:-$(hostname)}" \
  --port "${SPARK_MASTER_PORT:-7077}" \
  --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}"

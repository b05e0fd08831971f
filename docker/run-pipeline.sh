#!/usr/bin/env bash
# docker-compose's pipeline service: demo data first if the data root has no raw/ yet, then the whole pipeline.
#   run-pipeline.sh [pipeline options]      e.g. --date 2026-01-14, --force
set -euo pipefail
here=$(dirname "$0")
data=${DLSPARK_DATA:-/data/dlspark}
if [ ! -d "$data/raw" ]; then
  "$here/submit.sh" generate --out "$data" --orders "${DEMO_ORDERS:-20000}" --days "${DEMO_DAYS:-14}"
fi
exec "$here/submit.sh" pipeline "$@"

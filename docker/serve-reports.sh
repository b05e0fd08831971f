#!/usr/bin/env bash
# docker-compose's report service: the run reports (DLSPARK_DATA/reports, one folder per run, index.html in each)
# served read-only over HTTP. Python's http.server: a viewer for one machine, not a public web server.
#   serve-reports.sh                      REPORT_BIND (0.0.0.0), REPORT_PORT (8000)
set -euo pipefail
. "$(dirname "$0")/env.sh"
reports=${DLSPARK_DATA:-/data/dlspark}/reports
echo "serve-reports.sh: $reports on port ${REPORT_PORT:-8000}" >&2
exec "$python" -m http.server "${REPORT_PORT:-8000}" --bind "${REPORT_BIND:-0.0.0.0}" --directory "$reports"

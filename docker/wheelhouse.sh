#!/usr/bin/env bash
# Fills docker/wheelhouse/ with a wheel of every package in locks/spark-LINE-runtime.lock (pyspark's is built from its
# source release). With wheels there, the Dockerfile installs with --no-index: the build reaches no package index,
# as on an air-gapped host or where a container does not trust the host's HTTPS proxy. About 800 MB, a minute.
#   docker/wheelhouse.sh                  PYTHON: a Python 3.11 with pip (default: python3.11, then python3)
#                                         SPARK_LINE: the image's Spark line (default 4.0, as the Dockerfile's)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
mkdir -p docker/wheelhouse  # without the folder, pip 23.2 wrote the first wheel as a file of its name
"$python" -m pip wheel --disable-pip-version-check --quiet -r "locks/spark-${SPARK_LINE:-4.0}-runtime.lock" -w docker/wheelhouse
echo "wheelhouse.sh: $(ls docker/wheelhouse/*.whl | wc -l) wheels, $(du -sh docker/wheelhouse | cut -f1) in docker/wheelhouse/" >&2

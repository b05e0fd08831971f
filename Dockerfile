# One image for every docker-compose service (master, workers, pipeline, scheduler, report): Debian's Python 3.11
# and OpenJDK 17, and one virtual environment with the runtime stack of one Spark line (locks/spark-LINE-runtime.lock)
# and dlspark. Spark is pyspark's own (its jars are in the wheel), so master, workers and driver run the locked version.
#   docker compose build                  (pulls debian:bookworm-slim, installs from the package index)
#   SPARK_LINE=3.5 docker compose build   (another Spark line: 3.5, 4.0 (the default) or 4.3; docker build takes
#                                          --build-arg SPARK_LINE=3.5)
#   docker/wheelhouse.sh && docker compose build   (installs from docker/wheelhouse/ alone, with --no-index)
# Where no image registry is reachable, docker/base-image.sh makes debian:bookworm-slim locally.
ARG BASE=debian:bookworm-slim
ARG SPARK_LINE=4.0

FROM ${BASE} AS build
ARG SPARK_LINE
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
# docker/wheelhouse* matches nothing when there is no wheelhouse: then the lock alone is copied
COPY locks/spark-${SPARK_LINE}-runtime.lock docker/wheelhouse* /tmp/wheels/
RUN python3 -m venv /opt/dlspark/.venv \
    && if ls /tmp/wheels/*.whl >/dev/null 2>&1; then index="--no-index --find-links /tmp/wheels"; else index=""; fi \
    && /opt/dlspark/.venv/bin/pip install --no-cache-dir --disable-pip-version-check $index \
       -r /tmp/wheels/spark-${SPARK_LINE}-runtime.lock
COPY pyproject.toml README.md /tmp/src/
COPY dlspark /tmp/src/dlspark
# TensorFlow's C++ headers (290 MB) serve only to compile custom ops: not kept
RUN /opt/dlspark/.venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
       /tmp/src \
    && rm -rf /opt/dlspark/.venv/lib/python3.11/site-packages/tensorflow/include

# The image itself: no compiler, no wheels, no pip cache; only what runs.
FROM ${BASE}
# openjdk-17's post-install script fails on the slim image unless the man folder exists
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3 openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/* /usr/share/man/* /usr/share/doc/*
RUN useradd --create-home --uid 1000 --shell /bin/bash dlspark \
    && mkdir -p /data /tmp/spark-work \
    && chown dlspark:dlspark /data /tmp/spark-work
COPY --from=build /opt/dlspark/.venv /opt/dlspark/.venv
WORKDIR /opt/dlspark
COPY jobs jobs
COPY conf conf
COPY docker/*.sh docker/
ENV PATH=/opt/dlspark/.venv/bin:$PATH DLSPARK_PYTHON=/opt/dlspark/.venv/bin/python
# The data volume takes its owner from /data here: dlspark can write it without root
USER dlspark

# One image for every docker-compose service (master, workers, pipeline, scheduler): the official Spark 3.5 image
# (Java 17, Python 3) with dlspark and its locked stack installed. Build: docker compose build
FROM apache/spark:3.5.5-scala2.12-java17-python3-ubuntu

USER root
WORKDIR /opt/dlspark
# requirements.lock is resolved for Python 3.11 and the image ships Ubuntu's 3.10: uv installs a 3.11 (at build
# time) for the environment. Master, workers and driver all run pyspark's Spark from this environment, so the JVM
# side matches the Python side exactly; the image's own /opt/spark is not used.
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_NO_CACHE=1 DLSPARK_PYTHON=/opt/dlspark/.venv/bin/python
RUN python3 -m pip install --no-cache-dir uv \
    && uv python install 3.11 \
    && uv venv --python 3.11 /opt/dlspark/.venv
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --python "$DLSPARK_PYTHON" -r requirements.lock
COPY dlspark dlspark
COPY jobs jobs
COPY conf conf
COPY docker docker
RUN uv pip install --python "$DLSPARK_PYTHON" --no-deps -e . \
    && mkdir -p /data /tmp/spark-work \
    && chown -R spark:spark /data /tmp/spark-work
ENV PATH=/opt/dlspark/.venv/bin:$PATH
USER spark

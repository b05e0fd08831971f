# Sourced by the other scripts: Spark is the one of dlspark's environment (pyspark's), for every process, so master,
# workers, driver and executors all run the Spark version that the lock pins.
python=${DLSPARK_PYTHON:-/opt/dlspark/.venv/bin/python}
bin=$(dirname "$python")
SPARK_HOME=$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME PYSPARK_PYTHON=$python PYSPARK_DRIVER_PYTHON=$python

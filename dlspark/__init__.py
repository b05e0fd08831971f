"""dlspark: raw order-line feeds to association rules and a Keras model, on Apache Spark."""

__version__ = "0.1.0"

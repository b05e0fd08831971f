"""Training: Petastorm -> tf.data (data), Keras models (models), the driver trainer (driver), evaluation (evaluate).

TensorFlow and Keras are imported inside functions, so `dlspark` commands that do not train start fast.
"""

import os

# TensorFlow's C++ start-up notices (oneDNN, CPU features) are not for users; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

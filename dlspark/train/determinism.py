"""train.deterministic: the same weights from the same shards and settings, bit for bit, at a cost in speed.

TensorFlow's op determinism, one thread for its ops, and one Petastorm reader worker (with several, row groups
arrive in the order the workers finish them). The seeds are set by the trainers in either mode.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def make_deterministic() -> None:
    """Call before the first TensorFlow op of the process."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: its ops are deterministic all the same
        log.warning(
            "train.deterministic: TensorFlow already runs with %d threads here; kept (its ops are deterministic)",
            tf.config.threading.get_intra_op_parallelism_threads(),
        )


def reader_workers(tc: Any) -> int:
    return 1 if tc.deterministic else int(tc.reader_workers)

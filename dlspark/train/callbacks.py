"""Keras callbacks of the driver trainer (imported with Keras, only where training runs)."""

from __future__ import annotations

import time
from typing import Any

import keras


class Throughput(keras.callbacks.Callback):
    """Training examples per second of each epoch (validation left out), and when the first step ended."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.rates: list[float] = []
        self.first_step: float | None = None
        self._started = 0.0
        self._steps = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._started, self._steps = time.monotonic(), 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._steps += 1
        if self.first_step is None:
            self.first_step = time.time()

    def on_test_begin(self, logs: Any = None) -> None:  # validation starts: the epoch's training is over
        self._record()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:  # no validation this epoch
        self._record()

    def _record(self) -> None:
        if self._steps:
            self.rates.append(self._steps * self.batch_size / (time.monotonic() - self._started))
            self._steps = 0

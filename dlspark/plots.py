"""PNG figures (matplotlib, Agg backend) for the run report and the training curve, written through dlspark.fs."""

from __future__ import annotations

import io
from typing import Any

from dlspark import fs


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: str) -> str:
    """Write a matplotlib figure as a PNG (to any filesystem) and close it; returns the path."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot().close(figure)
    fs.write_bytes(path, buffer.getvalue())
    return path


def plot_training(history: list[dict[str, float]], path: str) -> str:
    """Loss and top-10 accuracy per epoch, training and validation, as a PNG; returns its path."""
    epochs = [int(row["epoch"]) + 1 for row in history]
    figure, (loss, top10) = pyplot().subplots(1, 2, figsize=(10, 4))
    for axis, metric, title in [(loss, "loss", "loss (cross-entropy)"), (top10, "top10", "top-10 accuracy")]:
        for prefix, style in [("", "-o"), ("val_", "--s")]:
            values: list[Any] = [row.get(prefix + metric) for row in history]
            axis.plot(epochs, values, style, label=(prefix or "train_").rstrip("_"))
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    return save_png(figure, path)

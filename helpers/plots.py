"""Figures used across the course (matplotlib and seaborn).

Each function draws one kind of picture and returns the matplotlib Figure,
so a notebook cell stays one short call and the figure can still be saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.3,
):
    """Draw uint8 images ``(N, H, W, 3)`` in a grid, with an optional title under each."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def examples_per_class(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    per_class: int = 8,
    seed: int = 0,
):
    """One row per class with ``per_class`` random examples of it, the class name on the left."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(class_names), per_class, figsize=(per_class * 1.0, len(class_names) * 1.0)
    )
    for row, name in enumerate(class_names):
        picks = rng.choice(np.flatnonzero(labels == row), size=per_class, replace=False)
        for col, index in enumerate(picks):
            ax = axes[row, col]
            ax.imshow(images[index], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def class_balance(splits: dict[str, np.ndarray], class_names: Sequence[str]):
    """Bar chart of the share of each class in each named split (e.g. train, validation)."""
    frames = []
    for split, labels in splits.items():
        counts = np.bincount(labels, minlength=len(class_names))
        frames.append(
            pd.DataFrame({"class": class_names, "share": counts / counts.sum(), "split": split})
        )
    table = pd.concat(frames, ignore_index=True)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    sns.barplot(data=table, x="class", y="share", hue="split", ax=ax)
    ax.axhline(1 / len(class_names), color="black", lw=0.8, ls="--", label="perfect balance")
    ax.set_ylabel("share of images")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def channel_histograms(images: np.ndarray, sample: int = 300, seed: int = 0):
    """Distribution of pixel values in the red, green and blue channels (a random sample)."""
    rng = np.random.default_rng(seed)
    picked = images[rng.choice(len(images), size=min(sample, len(images)), replace=False)]
    table = pd.DataFrame(
        {
            "value": picked.reshape(-1, 3).ravel(order="F"),
            "channel": np.repeat(["red", "green", "blue"], picked.size // 3),
        }
    )
    fig, ax = plt.subplots(figsize=(8, 3))
    sns.histplot(
        data=table,
        x="value",
        hue="channel",
        bins=64,
        element="step",
        stat="density",
        common_norm=False,
        palette={"red": "tab:red", "green": "tab:green", "blue": "tab:blue"},
        ax=ax,
    )
    ax.set_xlabel("pixel value (uint8, 0-255)")
    fig.tight_layout()
    return fig


# --- evaluation (notebook 06) -----------------------------------------------------------------


def confusion_heatmaps(counts: np.ndarray, class_names: Sequence[str]):
    """Two heatmaps of one confusion matrix: counts, and rows normalised to sum to 1 (recall
    on the diagonal). Rows are true classes, columns predictions."""
    counts = np.asarray(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    panels = [(counts, "d", "counts"), (shares, ".2f", "share of each true class")]
    for ax, (matrix, fmt, title) in zip(axes, panels, strict=True):
        sns.heatmap(
            matrix,
            annot=True,
            fmt=fmt,
            cmap="Blues",
            cbar=False,
            square=True,
            annot_kws={"fontsize": 7},
            xticklabels=class_names,
            yticklabels=class_names,
            ax=ax,
        )
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
    fig.tight_layout()
    return fig


def misclassified_grid(images: np.ndarray, table: pd.DataFrame, ncols: int = 8):
    """Misclassified images with "true → predicted (confidence)" under each; ``table`` comes
    from ``helpers.evaluation.misclassified``."""
    titles = [f"{row.true}→{row.predicted} {row.confidence:.0%}" for row in table.itertuples()]
    return image_grid(images[table["index"].to_numpy()], titles, ncols=ncols, size=1.5)


def top_k_bars(image: np.ndarray, top: pd.DataFrame, title: str = ""):
    """An image next to a bar chart of its most probable classes (``class``, ``probability``)."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(7.5, 2.6), gridspec_kw={"width_ratios": [1, 2.2]}
    )
    left.imshow(image, interpolation="nearest")
    left.set_title(f"{title}\n(what the model sees: 32×32)", fontsize=9)
    left.axis("off")
    sns.barplot(data=top, x="probability", y="class", color="tab:blue", ax=right)
    for patch, p in zip(right.patches, top["probability"], strict=False):
        right.text(
            patch.get_width() + 0.01,
            patch.get_y() + patch.get_height() / 2,
            f"{p:.0%}",
            va="center",
            fontsize=9,
        )
    right.set_xlim(0, 1.1)
    right.set_xlabel("probability")
    right.set_ylabel("")
    fig.tight_layout()
    return fig


# --- overfitting (notebook 05) ----------------------------------------------------------------


def generalization_gap(history: pd.DataFrame, title: str = ""):
    """Training and validation accuracy per epoch with the gap between them shaded, and the
    two losses. ``history`` is tidy (``training.history_frame``: epoch, metric, split, value)."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    acc = history[history["metric"] == "accuracy"].pivot(
        index="epoch", columns="split", values="value"
    )
    acc_ax.plot(acc.index, acc["train"], marker="o", label="train")
    acc_ax.plot(acc.index, acc["validation"], marker="o", label="validation")
    acc_ax.fill_between(
        acc.index, acc["validation"], acc["train"], color="tab:red", alpha=0.15, label="gap"
    )
    last = acc.index[-1]
    gap = acc.loc[last, "train"] - acc.loc[last, "validation"]
    acc_ax.annotate(
        f"gap {gap:.2f}",
        (last, (acc.loc[last, "train"] + acc.loc[last, "validation"]) / 2),
        ha="right",
        color="tab:red",
    )
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy".strip())
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    acc_ax.legend()
    losses = history[history["metric"] == "loss"]
    sns.lineplot(data=losses, x="epoch", y="value", hue="split", marker="o", ax=loss_ax)
    loss_ax.set(ylabel="loss", title=f"{title} loss".strip())
    fig.tight_layout()
    return fig


def learning_curves_grid(histories: pd.DataFrame, metric: str = "accuracy", col_wrap: int = 4):
    """One panel per run (column ``run``) with the train and validation curves of ``metric``,
    on shared axes so the runs compare at a glance (seaborn ``relplot``)."""
    grid = sns.relplot(
        data=histories[histories["metric"] == metric],
        x="epoch",
        y="value",
        hue="split",
        col="run",
        col_wrap=min(col_wrap, histories["run"].nunique()),
        kind="line",
        marker="o",
        height=2.5,
        aspect=1.15,
    )
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    grid.set_ylabels(metric)
    return grid.figure


def image_rows(rows: dict[str, np.ndarray], size: float = 1.25):
    """One row of uint8 images per entry of ``rows``, the entry's name on the left
    (e.g. the same images before and after each augmentation layer)."""
    ncols = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(ncols * size + 1.5, len(rows) * size), squeeze=False
    )
    for ax_row, (name, images) in zip(axes, rows.items(), strict=True):
        for col, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(images):
                ax.imshow(images[col], interpolation="nearest")
            else:
                ax.axis("off")
        ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


# --- transfer learning (notebook 04) ---------------------------------------------------------


def phase_curves(history: pd.DataFrame, second_phase_from: int, label: str = "fine-tuning"):
    """Accuracy and loss side by side over two training phases (tidy ``history``: epoch,
    metric, split, value, epochs numbered across both phases), with a dashed line where
    the second phase (e.g. fine-tuning) starts."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        sns.lineplot(
            data=history[history["metric"] == metric],
            x="epoch",
            y="value",
            hue="split",
            marker="o",
            ax=ax,
        )
        ax.axvline(second_phase_from - 0.5, color="black", ls="--", lw=1)
        ax.annotate(
            f" {label} →",
            (second_phase_from - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            va="top",
            fontsize=9,
        )
        ax.set(ylabel=metric, title=metric)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def value_bars(values: dict[str, float], xlabel: str, fmt: str = "{:.3f}", title: str = ""):
    """One horizontal bar per named value (accuracies, seconds, GFLOPs), each labelled."""
    table = pd.DataFrame({"name": list(values), "value": list(values.values())})
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.2))
    sns.barplot(data=table, y="name", x="value", hue="name", legend=False, ax=ax)
    for container, value in zip(ax.containers, table["value"], strict=True):
        ax.bar_label(container, labels=[fmt.format(value)], padding=3, fontsize=9)
    ax.set(xlabel=xlabel, ylabel="", title=title)
    ax.margins(x=0.15)
    fig.tight_layout()
    return fig


# --- building and training CNNs (notebooks 02 and 03) ----------------------------------------


def history_frame(history) -> pd.DataFrame:
    """A history (a list of per-epoch rows, a Keras ``History`` or its ``.history`` dict)
    as a tidy DataFrame with columns ``epoch``, ``metric`` (loss, accuracy), ``split``
    (train, validation) and ``value``: one row per number, ready for seaborn."""
    if hasattr(history, "history"):  # keras.callbacks.History
        history = history.history
    if isinstance(history, dict):
        n = len(next(iter(history.values()), []))
        history = [{"epoch": i + 1, **{k: v[i] for k, v in history.items()}} for i in range(n)]
    rows = [
        {
            "epoch": int(entry["epoch"]),
            "metric": key.removeprefix("val_"),
            "split": "validation" if key.startswith("val_") else "train",
            "value": float(value),
        }
        for entry in history
        for key, value in entry.items()
        if key not in ("epoch", "learning_rate")
    ]
    return pd.DataFrame(rows, columns=["epoch", "metric", "split", "value"])


def learning_curves(history, fig=None, title: str = ""):
    """Loss and accuracy per epoch, training and validation, side by side (seaborn).

    ``history`` is a tidy frame (``history_frame``), a list of per-epoch rows
    (``TrainingResult.history``) or a Keras ``History``. Pass a ``matplotlib.figure.Figure``
    as ``fig`` to draw outside pyplot (the widgets panel does, from its training thread)."""
    frame = history if isinstance(history, pd.DataFrame) else history_frame(history)
    if fig is None:
        fig = plt.figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        part = frame[frame["metric"] == metric]
        if len(part):
            sns.lineplot(data=part, x="epoch", y="value", hue="split", marker="o", ax=ax)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title} {metric}".strip())
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def _tiles(tiles, ncols: int, size: float, title: str, cmap=None, labels: bool = False):
    """Small images in a grid without axes (filters, feature maps)."""
    nrows = int(np.ceil(len(tiles) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size + 0.4))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < len(tiles):
            ax.imshow(tiles[i], cmap=cmap, interpolation="nearest")
            if labels:
                ax.set_title(str(i), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def conv_filters(kernel: np.ndarray, max_filters: int = 32, ncols: int = 8, title: str = ""):
    """The 3×3 (or k×k) filters of a first convolution layer as small RGB images.

    ``kernel`` has Keras's shape ``(k, k, 3, filters)``; each filter is rescaled to
    0-1 on its own so its pattern (edge, colour blob) is visible."""
    tiles = []
    for i in range(min(max_filters, kernel.shape[-1])):
        f = kernel[..., i]
        f = (f - f.min()) / (f.max() - f.min() + 1e-8)
        tiles.append(f if f.shape[-1] == 3 else f.mean(axis=-1))
    return _tiles(tiles, ncols, 0.9, title)


def feature_maps(maps: np.ndarray, max_maps: int = 16, ncols: int = 8, title: str = ""):
    """The channels of one image's activations ``(H, W, C)`` as colour-mapped images."""
    tiles = [maps[..., i] for i in range(min(max_maps, maps.shape[-1]))]
    return _tiles(tiles, ncols, 1.1, title, cmap="viridis", labels=True)

"""Figures used across the course (matplotlib and seaborn): each function draws what it is
given and returns the matplotlib Figure, so a notebook cell stays one short call."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def image_grid(
    images,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.3,
    *,
    cmap=None,
    title: str = "",
):
    """Draw images ``(N, H, W, 3)`` (or 2-D maps, coloured with ``cmap``) in a grid without
    axes, with an optional title under each and ``title`` above all."""
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def examples_per_class(images, labels, class_names: Sequence[str], per_class=8, seed=0):
    """One row per class with ``per_class`` random examples of it, the class name on the left."""
    rng = np.random.default_rng(seed)
    rows = {}
    for c, name in enumerate(class_names):
        rows[name] = images[rng.choice(np.flatnonzero(labels == c), per_class, replace=False)]
    return image_rows(rows, size=1.0)


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
    ax.set(ylabel="share of images", xlabel="")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def channel_histograms(images: np.ndarray, sample: int = 300, seed: int = 0):
    """Distribution of pixel values in the red, green and blue channels (a random sample)."""
    rng = np.random.default_rng(seed)
    picked = images[rng.choice(len(images), size=min(sample, len(images)), replace=False)]
    fig, ax = plt.subplots(figsize=(8, 3))
    style = {"bins": 64, "range": (0, 255), "density": True, "histtype": "step"}
    for c, name in enumerate(("red", "green", "blue")):
        ax.hist(picked[..., c].ravel(), color=f"tab:{name}", label=name, **style)
    ax.legend(title="channel")
    ax.set_xlabel("pixel value (uint8, 0-255)")
    fig.tight_layout()
    return fig


def confusion_heatmaps(counts: np.ndarray, class_names: Sequence[str]):
    """Two heatmaps of one confusion matrix: counts, and rows normalised to sum to 1 (recall
    on the diagonal). Rows are true classes, columns predictions."""
    counts = np.asarray(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    style = {"annot": True, "cmap": "Blues", "cbar": False, "square": True}
    style |= {"annot_kws": {"fontsize": 7}, "xticklabels": class_names, "yticklabels": class_names}
    panels = [(counts, "d", "counts"), (shares, ".2f", "share of each true class")]
    for ax, (matrix, fmt, title) in zip(axes, panels, strict=True):
        sns.heatmap(matrix, fmt=fmt, ax=ax, **style)
        ax.set(xlabel="predicted class", ylabel="true class", title=title)
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
    shares = [f"{p:.0%}" for p in top["probability"]]
    right.bar_label(right.containers[0], labels=shares, padding=3, fontsize=9)
    right.set(xlim=(0, 1.1), xlabel="probability", ylabel="")
    fig.tight_layout()
    return fig


def generalization_gap(history: pd.DataFrame, title: str = ""):
    """``learning_curves`` with the gap between training and validation accuracy shaded and
    its last value written. ``history`` is tidy (``history_frame``)."""
    fig = learning_curves(history, title=title)
    acc_ax = fig.axes[1]
    acc = history[history["metric"] == "accuracy"].pivot(
        index="epoch", columns="split", values="value"
    )
    acc_ax.fill_between(acc.index, acc["validation"], acc["train"], color="tab:red", alpha=0.15)
    last = acc.iloc[-1]
    where = (acc.index[-1], (last["train"] + last["validation"]) / 2)
    gap = f"gap {last['train'] - last['validation']:.2f}"
    acc_ax.annotate(gap, where, ha="right", color="tab:red")
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
            ax.set(xticks=[], yticks=[])
            if col < len(images):
                ax.imshow(images[col], interpolation="nearest")
            else:
                ax.axis("off")
        ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def phase_curves(history: pd.DataFrame, second_phase_from: int, label: str = "fine-tuning"):
    """``learning_curves`` over two training phases (epochs numbered across both), with a
    dashed line where the second phase (e.g. fine-tuning) starts."""
    fig = learning_curves(history)
    for ax in fig.axes:
        ax.axvline(second_phase_from - 0.5, color="black", ls="--", lw=1)
        where = (second_phase_from - 0.5, 1.0)
        ax.annotate(f" {label} →", where, xycoords=("data", "axes fraction"), va="top", fontsize=9)
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


def conv_filters(kernel: np.ndarray, max_filters: int = 32, ncols: int = 8, title: str = ""):
    """The 3×3 (or k×k) filters of a first convolution layer, shape ``(k, k, 3, filters)``,
    as small RGB images, each rescaled to 0-1 on its own so its pattern is visible."""
    tiles = []
    for i in range(min(max_filters, kernel.shape[-1])):
        f = kernel[..., i]
        f = (f - f.min()) / (f.max() - f.min() + 1e-8)
        tiles.append(f if f.shape[-1] == 3 else f.mean(axis=-1))
    return image_grid(tiles, ncols=ncols, size=0.9, title=title)


def feature_maps(maps: np.ndarray, max_maps: int = 16, ncols: int = 8, title: str = ""):
    """The channels of one image's activations ``(H, W, C)`` as colour-mapped images."""
    n = min(max_maps, maps.shape[-1])
    tiles, labels = [maps[..., i] for i in range(n)], [str(i) for i in range(n)]
    return image_grid(tiles, labels, ncols, size=1.1, cmap="viridis", title=title)

"""Evaluating a classifier (notebook 06 shows each idea first): scikit-learn's metrics as
tables, confusion matrices, top-k accuracy, ensembles, and the models earlier notebooks saved.

Labels are integer arrays ``(N,)``, probabilities ``(N, n_classes)``. ``class_names`` fixes
the number of classes, so a class missing from a small slice still gets its row. A class never
predicted gets precision 0 (scikit-learn's ``zero_division``), not a warning; a class with no
true examples keeps an all-zero normalised row, not NaN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from helpers import config

#: Value scikit-learn reports for a metric whose denominator is zero (0 / 0).
ZERO_DIVISION = 0.0


class EvaluationError(ValueError):
    """Labels or probabilities that cannot be evaluated; the message says how to fix them."""


def _labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # (N, 1) column, as Keras sometimes returns labels
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise EvaluationError(
            f"{name} must be a 1-D array of integer class labels, got shape {y.shape} and "
            f"dtype {y.dtype}. For probabilities, take `proba.argmax(axis=1)` first."
        )
    if y.size == 0:
        raise EvaluationError(f"{name} is empty: there is nothing to evaluate.")
    return y.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise EvaluationError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}: "
            "predict on the same images you take the labels from."
        )
    return y_true, y_pred


def _n_classes(class_names: Sequence[str] | None, *arrays: np.ndarray) -> int:
    low, seen = min(int(a.min()) for a in arrays), max(int(a.max()) for a in arrays) + 1
    if low < 0:
        raise EvaluationError(f"class labels must be 0 or more, got {low}.")
    if class_names is None:
        return seen
    if seen > len(class_names):
        raise EvaluationError(
            f"labels run up to {seen - 1}, outside the {len(class_names)} class names given "
            f"(0 to {len(class_names) - 1})."
        )
    return len(class_names)


def _classes(y_true, y_pred, class_names):
    """The checked labels, the number of classes and their names."""
    y_true, y_pred = _pair(y_true, y_pred)
    n = _n_classes(class_names, y_true, y_pred)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    return y_true, y_pred, n, names


def _proba(proba, name: str = "proba") -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] == 0 or proba.shape[1] < 2:
        raise EvaluationError(
            f"{name} must have shape (n_images, n_classes) with at least 2 classes, "
            f"got {proba.shape}. Use `model.predict(x)` on a batch of images."
        )
    return proba


def accuracy(y_true, y_pred) -> float:
    """Share of images whose predicted class is the true class."""
    from sklearn.metrics import accuracy_score

    y_true, y_pred = _pair(y_true, y_pred)
    return float(accuracy_score(y_true, y_pred))


def never_predicted(y_true, y_pred, class_names: Sequence[str] | None = None) -> list[str]:
    """Names of the classes the model never predicts (their precision, 0 / 0, is reported as 0);
    class numbers as strings when ``class_names`` is None."""
    y_true, y_pred, n, names = _classes(y_true, y_pred, class_names)
    counts = np.bincount(y_pred, minlength=n)
    return [names[c] for c in range(n) if counts[c] == 0]


def report_table(y_true, y_pred, class_names: Sequence[str] | None = None):
    """``sklearn.metrics.classification_report`` as a DataFrame: a row per class (precision,
    recall, f1-score, support, and ``predicted``: how often the model chose it), then
    ``accuracy``, ``macro avg`` and ``weighted avg``."""
    import pandas as pd
    from sklearn.metrics import classification_report

    y_true, y_pred, n, names = _classes(y_true, y_pred, class_names)
    report = classification_report(
        y_true,
        y_pred,
        labels=list(range(n)),
        target_names=names,
        output_dict=True,
        zero_division=ZERO_DIVISION,
    )
    nan = float("nan")
    report["accuracy"] = {"precision": nan, "recall": nan, "f1-score": report["accuracy"]}
    report["accuracy"]["support"] = len(y_true)
    table = pd.DataFrame(report).T
    table["support"] = table["support"].astype(int)
    table["predicted"] = [*np.bincount(y_pred, minlength=n).tolist(), *[len(y_pred)] * 3]
    table.index.name = "class"
    return table


def summary(y_true, y_pred, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy and the macro and weighted averages of precision, recall and F1, as a dict."""
    table = report_table(y_true, y_pred, class_names)
    out = {"accuracy": float(table.loc["accuracy", "f1-score"])}
    for avg in ("macro", "weighted"):
        for metric in ("precision", "recall", "f1-score"):
            out[f"{metric.removesuffix('-score')}_{avg}"] = float(table.loc[f"{avg} avg", metric])
    return out


def confusion(y_true, y_pred, class_names: Sequence[str] | None = None, *, normalize=False):
    """Confusion matrix (row = true class, column = predicted class); ``normalize=True``
    divides each row by its sum, so the diagonal is the per-class recall."""
    from sklearn.metrics import confusion_matrix

    y_true, y_pred, n, _ = _classes(y_true, y_pred, class_names)
    counts = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    return normalize_rows(counts) if normalize else counts


def normalize_rows(counts) -> np.ndarray:
    """Divide each row of a confusion matrix by its sum; all-zero rows stay zero."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def most_confused(counts, class_names: Sequence[str], k: int = 5):
    """The ``k`` largest non-zero off-diagonal cells of a confusion matrix, as a DataFrame:
    ``true``, ``predicted``, ``count`` and ``share`` (of that true class)."""
    import pandas as pd

    counts = np.asarray(counts)
    if counts.shape != (len(class_names), len(class_names)):
        raise EvaluationError(
            f"expected a square confusion matrix with {len(class_names)} rows, got {counts.shape}"
        )
    shares = normalize_rows(counts)
    rows = [
        (class_names[t], class_names[p], int(counts[t, p]), float(shares[t, p]))
        for t in range(len(class_names))
        for p in range(len(class_names))
        if t != p and counts[t, p] > 0
    ]
    table = pd.DataFrame(rows, columns=["true", "predicted", "count", "share"])
    table = table.sort_values(["count", "share"], ascending=False, kind="stable")
    return table.head(k).reset_index(drop=True)


def top_k_accuracy(y_true, proba, k: int = 3) -> float:
    """Share of images whose true class is among the ``k`` most probable classes."""
    from sklearn.metrics import top_k_accuracy_score

    proba = _proba(proba)
    y_true = _labels(y_true, "y_true")
    if len(y_true) != len(proba):
        raise EvaluationError(f"{len(y_true)} labels for {len(proba)} rows of probabilities.")
    if not 1 <= k <= proba.shape[1]:
        raise EvaluationError(f"k must be between 1 and {proba.shape[1]}, got {k}.")
    _n_classes(range(proba.shape[1]), y_true)
    if k == proba.shape[1]:
        return 1.0  # every class is in the top k (scikit-learn warns that this is meaningless)
    return float(top_k_accuracy_score(y_true, proba, k=k, labels=list(range(proba.shape[1]))))


def misclassified(y_true, proba, class_names: Sequence[str], n: int | None = None):
    """The wrongly classified images, most confident first, as a DataFrame: ``index`` (into
    the arrays), ``true``, ``predicted``, ``confidence``; ``n`` keeps the first n."""
    import pandas as pd

    proba = _proba(proba)
    y_true = _labels(y_true, "y_true")
    y_pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = proba[wrong, y_pred[wrong]]
    order = np.argsort(-confidence, kind="stable")
    wrong, confidence = wrong[order], confidence[order]
    table = pd.DataFrame(
        {
            "index": wrong,
            "true": [class_names[i] for i in y_true[wrong]],
            "predicted": [class_names[i] for i in y_pred[wrong]],
            "confidence": confidence,
        }
    )
    return table if n is None else table.head(n)


def generalization_gap(model, train: tuple, validation: tuple) -> dict[str, float]:
    """Accuracy on the training and the validation data, both in inference mode, and their
    difference ``gap`` (the training accuracy ``fit`` logs has dropout and augmentation on
    and averages over a changing model, so it is not comparable)."""
    (x_train, y_train), (x_val, y_val) = train, validation
    train_acc = accuracy(y_train, predict_proba(model, x_train).argmax(axis=1))
    val_acc = accuracy(y_val, predict_proba(model, x_val).argmax(axis=1))
    return {"train accuracy": train_acc, "val accuracy": val_acc, "gap": train_acc - val_acc}


def predict_proba(model, x, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of ``model`` on images ``x``, as ``model.predict`` gives them.

    On TensorFlow and PyTorch the model is called on each batch directly: ``predict`` traces
    a graph for every new model and for a last, smaller batch, and several models in a row
    (an ensemble) made TensorFlow warn about "retracing". On JAX it is ``model.predict``: a
    direct call would compile the model operation by operation.
    """
    import keras

    x = np.asarray(x)
    if len(x) == 0:
        raise EvaluationError("there are no images to predict.")
    if keras.backend.backend() == "jax":
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    starts = range(0, len(x), batch_size)
    batches = (np.ascontiguousarray(x[start : start + batch_size]) for start in starts)
    return np.concatenate(
        [keras.ops.convert_to_numpy(model(batch, training=False)) for batch in batches]
    ).astype(np.float32)


def ensemble_proba(probas: Sequence) -> np.ndarray:
    """An ensemble's prediction: the mean of its members' softmax probabilities."""
    if len(probas) == 0:
        raise EvaluationError("an ensemble needs at least one member's probabilities.")
    arrays = [_proba(p, f"member {i}") for i, p in enumerate(probas)]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise EvaluationError(
            f"ensemble members disagree on shape {sorted(shapes)}: predict every member on "
            "the same images."
        )
    return np.mean(arrays, axis=0)


def compare_members(y_true, probas: dict[str, np.ndarray], k: int = 3):
    """Accuracy and top-k accuracy of each member and of their ``ensemble`` (the mean of all),
    as a DataFrame; ``gain`` is each accuracy minus the best single member's."""
    import pandas as pd

    probas = {**probas, "ensemble": ensemble_proba(list(probas.values()))}
    rows = {
        name: {
            "accuracy": accuracy(y_true, _proba(p).argmax(axis=1)),
            f"top-{k} accuracy": top_k_accuracy(y_true, p, k),
        }
        for name, p in probas.items()
    }
    table = pd.DataFrame(rows).T
    table.index.name = "model"
    best = table.drop(index="ensemble")["accuracy"].max()
    table["gain"] = table["accuracy"] - best
    return table


def saved_models(
    patterns: Sequence[str] = ("*.keras",), directory: str | Path | None = None
) -> dict[str, Path]:
    """``{name: path}`` of the models under ``config.artifacts_dir()`` (or ``directory``)
    matching any glob of ``patterns`` (e.g. ``"runs/03_*/best.keras"``), sorted by name;
    ``best.keras`` and ``last.keras`` are named after their folder (the run)."""
    folder = Path(directory) if directory is not None else config.artifacts_dir()
    found = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    named = {(p.parent.name if p.stem in ("best", "last") else p.stem): p for p in found}
    return dict(sorted(named.items()))


def load_members(paths: dict[str, Path], input_shape=(32, 32, 3), n_classes: int = 10) -> dict:
    """Load saved models for an ensemble, keeping those that take ``input_shape`` images and
    output ``n_classes`` probabilities; the others are skipped with a printed reason."""
    from helpers import training

    members = {}
    for name, path in paths.items():
        model = training.load_model(path)
        inputs, outputs = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
        if inputs != tuple(input_shape) or outputs != (n_classes,):
            print(
                f"skipped {name}: it maps {inputs} to {outputs}, "
                f"not {tuple(input_shape)} to ({n_classes},)"
            )
            continue
        members[name] = model
    return members


def load_or_train(saved: dict, train: Callable[[], object], validation: tuple | None = None):
    """``(name, model, loaded)``: one of the ``saved`` models (``load_members``' dict), else
    ``train()``'s; prints which, since the numbers that follow depend on it. With
    ``validation`` (``(x, y)``) and several saved models, each is scored on it and the most
    accurate is kept (the test set chooses nothing); without it, the first by name."""
    if saved:
        name = next(iter(saved))
        if validation is not None and len(saved) > 1:
            x_val, y_val = validation
            scores = {n: accuracy(y_val, predict_proba(m, x_val).argmax(axis=1))
                      for n, m in saved.items()}  # fmt: skip
            for n, score in scores.items():
                print(f"{n}: {score:.1%} on the validation split")
            name = max(scores, key=scores.get)
        print(f"Loaded {name}, saved by an earlier notebook.")
        return name, saved[name], True
    print(
        "No usable saved model was found (none saved in this mode, or each was skipped above): "
        "a quick model is trained now instead."
    )
    start = time.perf_counter()
    model = train()
    print(f"Trained (or reloaded from its checkpoint) in {time.perf_counter() - start:.0f} s.")
    return getattr(model, "name", "quick model"), model, False

"""Evaluating a classifier: metrics from scikit-learn, confusion matrices, top-k, ensembles.

Notebook 06 introduces every idea here in its own cells first; these functions
package them so later notebooks can call them in one line.

All functions take integer labels (``y_true``, ``y_pred``: shape ``(N,)``) or
class probabilities (``proba``: shape ``(N, n_classes)``, rows summing to 1 as
a softmax layer gives them). ``class_names`` fixes the number of classes, so a
class that is missing from a small test slice still gets its row and column.

Two edge cases are handled on purpose rather than left to warnings:

* a class that the model **never predicts** has no precision (TP / (TP + FP)
  is 0 / 0); scikit-learn's ``zero_division=0`` reports it as 0, and
  ``never_predicted`` names those classes so a notebook can say why;
* a class with **no true examples** has no recall and an all-zero row in the
  confusion matrix; its normalised row stays zero instead of becoming NaN.
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


# --- checking inputs -------------------------------------------------------------------------


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


def _proba(proba, name: str = "proba") -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] == 0 or proba.shape[1] < 2:
        raise EvaluationError(
            f"{name} must have shape (n_images, n_classes) with at least 2 classes, "
            f"got {proba.shape}. Use `model.predict(x)` on a batch of images."
        )
    return proba


# --- metrics ---------------------------------------------------------------------------------


def accuracy(y_true, y_pred) -> float:
    """Share of images whose predicted class is the true class."""
    from sklearn.metrics import accuracy_score

    y_true, y_pred = _pair(y_true, y_pred)
    return float(accuracy_score(y_true, y_pred))


def never_predicted(y_true, y_pred, class_names: Sequence[str] | None = None) -> list[str]:
    """Classes the model never predicts: their precision is 0 / 0, reported as 0.

    Returns class names (or numbers as strings when ``class_names`` is None).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    n = _n_classes(class_names, y_true, y_pred)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    counts = np.bincount(y_pred, minlength=n)
    return [names[c] for c in range(n) if counts[c] == 0]


def report_table(y_true, y_pred, class_names: Sequence[str] | None = None):
    """``sklearn.metrics.classification_report`` as a pandas DataFrame.

    One row per class (precision, recall, f1-score, support, plus ``predicted``:
    how often the model chose that class), then ``accuracy``, ``macro avg``
    (every class counts the same) and ``weighted avg`` (classes weighted by
    their number of true examples). A class never predicted gets precision 0
    (``zero_division=0``) instead of a warning; see ``never_predicted``.
    """
    import pandas as pd
    from sklearn.metrics import classification_report

    y_true, y_pred = _pair(y_true, y_pred)
    n = _n_classes(class_names, y_true, y_pred)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    report = classification_report(
        y_true,
        y_pred,
        labels=list(range(n)),
        target_names=names,
        output_dict=True,
        zero_division=ZERO_DIVISION,
    )
    acc = report.pop("accuracy")
    table = pd.DataFrame(report).T
    table["support"] = table["support"].astype(int)
    predicted = np.bincount(y_pred, minlength=n)
    table["predicted"] = [*predicted.tolist(), len(y_pred), len(y_pred)]
    accuracy_row = pd.DataFrame(
        {"precision": [np.nan], "recall": [np.nan], "f1-score": [acc]},
        index=["accuracy"],
    ).assign(support=len(y_true), predicted=len(y_pred))
    table = pd.concat([table.iloc[:n], accuracy_row, table.iloc[n:]])
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
    """Confusion matrix: row = true class, column = predicted class.

    With ``normalize=True`` each row is divided by the number of true examples
    of its class, so it sums to 1 and the diagonal is the per-class recall. A
    class with no true examples keeps a row of zeros (not NaN).
    """
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = _pair(y_true, y_pred)
    n = _n_classes(class_names, y_true, y_pred)
    counts = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    return normalize_rows(counts) if normalize else counts


def normalize_rows(counts) -> np.ndarray:
    """Divide each row of a confusion matrix by its sum; all-zero rows stay zero."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def most_confused(counts, class_names: Sequence[str], k: int = 5):
    """The ``k`` largest off-diagonal cells of a confusion matrix, as a DataFrame.

    Columns: ``true``, ``predicted``, ``count`` and ``share`` (the fraction of
    that true class sent to that prediction). Pairs with a count of 0 are left out.
    """
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
    """The wrongly classified images, most confident mistakes first, as a DataFrame.

    Columns: ``index`` (into the evaluated arrays), ``true``, ``predicted``,
    ``confidence`` (probability of the predicted class). ``n`` keeps the first n.
    """
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
    """Accuracy on the training data and on the validation data, both measured the same
    way (inference mode: dropout and augmentation off), and their difference ``gap``.

    The training accuracy Keras logs during ``fit`` is measured with dropout and
    augmentation on and averaged over a changing model, so it is not comparable.
    """
    (x_train, y_train), (x_val, y_val) = train, validation
    train_acc = accuracy(y_train, predict_proba(model, x_train).argmax(axis=1))
    val_acc = accuracy(y_val, predict_proba(model, x_val).argmax(axis=1))
    return {"train accuracy": train_acc, "val accuracy": val_acc, "gap": train_acc - val_acc}


# --- models and ensembles ---------------------------------------------------------------------


def predict_proba(model, x, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of ``model`` on uint8 images ``x`` (the model rescales them).

    On TensorFlow and PyTorch, the same as ``model.predict(x, batch_size=batch_size)`` but
    calling the model on each batch directly (``model(batch, training=False)``): ``predict``
    traces a TensorFlow graph for every new model and again for a last, smaller batch, and
    predicting with several models in a row (an ensemble, an ablation) made TensorFlow print
    warnings about "retracing". On JAX it is ``model.predict``: JAX is fast only compiled,
    and a direct call would run, and compile, the model operation by operation.
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
    """Accuracy and top-k accuracy of each member and of their ensemble, as a DataFrame.

    The ``ensemble`` row averages all members; ``gain`` is its accuracy minus
    the best single member's (positive: the ensemble helps).
    """
    import pandas as pd

    rows = {name: _scores(y_true, p, k) for name, p in probas.items()}
    rows["ensemble"] = _scores(y_true, ensemble_proba(list(probas.values())), k)
    table = pd.DataFrame(rows).T
    table.index.name = "model"
    best = table.drop(index="ensemble")["accuracy"].max()
    table["gain"] = table["accuracy"] - best
    return table


def _scores(y_true, proba, k: int) -> dict[str, float]:
    proba = _proba(proba)
    return {
        "accuracy": accuracy(y_true, proba.argmax(axis=1)),
        f"top-{k} accuracy": top_k_accuracy(y_true, proba, k),
    }


def saved_models(
    patterns: Sequence[str] = ("*.keras",), directory: str | Path | None = None
) -> dict[str, Path]:
    """Models saved by earlier notebooks: ``{name: path}`` for the files under
    ``config.artifacts_dir()`` (or ``directory``) that match any of the glob ``patterns``,
    e.g. ``"runs/03_*/best.keras"``, sorted by name. A file called ``best.keras`` or
    ``last.keras`` is named after its folder (the run), any other after its file name."""
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


def load_or_train(
    patterns: Sequence[str], train: Callable[[], object], directory: str | Path | None = None
):
    """The first usable model that an earlier notebook saved (``saved_models(patterns)``,
    in name order); when there is none, ``train()`` builds one instead.

    Prints which of the two happened, because the numbers that follow depend on it.
    Returns ``(name, model, loaded)``, ``loaded`` True for a model read from disk.
    """
    members = load_members(saved_models(patterns, directory))
    if members:
        name, model = next(iter(members.items()))
        print(f"Loaded {name}, saved by an earlier notebook.")
        return name, model, True
    folder = Path(directory) if directory is not None else config.artifacts_dir()
    print(
        f"No saved model matches {', '.join(patterns)} in {folder}: the notebooks that save "
        "one have not been run here, so a quick model is trained now instead."
    )
    start = time.perf_counter()
    model = train()
    print(f"Trained (or reloaded from its checkpoint) in {time.perf_counter() - start:.0f} s.")
    return getattr(model, "name", "quick model"), model, False

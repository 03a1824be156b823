"""Exercises of notebook 06 (Evaluating models): precision, recall and F1 from a confusion
matrix, F1 from counts, an ensemble judged on the validation split, and Grad-CAM's heat
maps of the true class against those of the predicted class."""

from __future__ import annotations

import math

import numpy as np

from exercises import NOT_ATTEMPTED, exercise, is_number


@exercise(
    "06.1",
    kind="predict",
    title="precision, recall and F1 of 'dog' from a 3-class confusion matrix",
    solution="""
    matrix = np.array([[40, 25, 3], [4, 30, 2], [5, 5, 43]])
    dog_precision = 30 / (25 + 30 + 5)  # column "predicted dog": TP / (TP + FP)
    dog_recall = 30 / (4 + 30 + 2)  # row "true dog": TP / (TP + FN)
    dog_f1 = 2 * dog_precision * dog_recall / (dog_precision + dog_recall)
    """,
)
def _dog_metrics(matrix, dog_precision, dog_recall, dog_f1):
    counts = np.asarray(matrix, dtype=float)
    tp = counts[1, 1]
    precision, recall = tp / counts[:, 1].sum(), tp / counts[1, :].sum()
    f1 = 2 * precision * recall / (precision + recall)
    close = lambda a, b: math.isclose(float(a), b, abs_tol=0.006)  # noqa: E731
    if not close(dog_precision, precision):
        if close(dog_precision, recall):
            return "precision divides by the column (all images predicted dog), not the row"
        return "precision = TP / (TP + FP): the dog column holds TP and the false positives"
    if not close(dog_recall, recall):
        return "recall = TP / (TP + FN): the dog row holds TP and the dogs predicted as others"
    if not close(dog_f1, f1):
        if close(dog_f1, (precision + recall) / 2):
            return "F1 is the harmonic mean 2PR / (P + R), not the plain average"
        return "F1 = 2 * precision * recall / (precision + recall)"
    return None


_F1_CASES = [((4, 1, 2), 8 / 11), ((10, 0, 0), 1.0), ((0, 3, 5), 0.0), ((0, 0, 0), 0.0)]


@exercise(
    "06.2",
    kind="code",
    title="F1 of one class from its counts TP, FP, FN (0 when it is 0 / 0)",
    solution="""
    def f1_from_counts(tp, fp, fn):
        if tp == 0:
            return 0.0  # precision or recall is 0 (or 0 / 0, reported as 0)
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        return 2 * precision * recall / (precision + recall)
    """,
)
def _f1_from_counts(f1_from_counts):
    if f1_from_counts(4, 1, 2) is None:
        return NOT_ATTEMPTED  # the placeholder's body (...) returns None
    for (tp, fp, fn), right in _F1_CASES:
        try:
            value = f1_from_counts(tp, fp, fn)
        except ZeroDivisionError:
            return (
                f"f1_from_counts({tp}, {fp}, {fn}) divides by zero: when a class is never "
                "predicted or never present, return 0 (like zero_division=0)"
            )
        if value is None or not math.isclose(float(value), right, abs_tol=1e-6):
            average = (4 / 5 + 4 / 6) / 2
            if (tp, fp, fn) == (4, 1, 2) and math.isclose(float(value or 0), average, abs_tol=1e-6):
                return "that is the plain average of precision and recall; F1 is 2PR / (P + R)"
            return f"f1_from_counts({tp}, {fp}, {fn}) gave {value}; it should be {right:.4f}"
    return None


@exercise(
    "06.3",
    kind="experiment",
    title="does averaging two members beat both of them on the validation split?",
    solution="""
    val_proba = {name: evaluation.predict_proba(m, x_val) for name, m in candidates.items()}
    scores = {name: evaluation.accuracy(y_val, p.argmax(axis=1)) for name, p in val_proba.items()}
    pair = sorted(scores, key=scores.get, reverse=True)[:2]  # the two best on validation
    pair_proba = (val_proba[pair[0]] + val_proba[pair[1]]) / 2
    pair_accuracy = evaluation.accuracy(y_val, pair_proba.argmax(axis=1))
    helped = pair_accuracy > max(scores[name] for name in pair)
    """,
)
def _pair_ensemble(val_proba, y_val, pair, pair_accuracy, helped):
    pair = list(pair) if isinstance(pair, list | tuple) else [pair]
    if len(pair) != 2 or len(set(pair)) != 2 or not set(pair) <= set(val_proba):
        return f"pair should be two different names among {sorted(val_proba)}"
    labels = np.asarray(y_val).reshape(-1)
    member = {n: float(np.mean(val_proba[n].argmax(axis=1) == labels)) for n in pair}
    mean = (np.asarray(val_proba[pair[0]]) + np.asarray(val_proba[pair[1]])) / 2
    right = float(np.mean(mean.argmax(axis=1) == labels))
    if not math.isclose(float(pair_accuracy), right, abs_tol=1e-4):
        if any(math.isclose(float(pair_accuracy), a, abs_tol=1e-4) for a in member.values()):
            return "that is one member's accuracy; average the two probability arrays first"
        return "average the two members' probabilities, take argmax, compare with y_val"
    if not isinstance(helped, bool | np.bool_):
        return "helped should be True or False"
    if bool(helped) != (right > max(member.values())):
        return f"compare pair_accuracy ({right:.3f}) with the members' {member}"
    return None


@exercise(
    "06.4",
    kind="experiment",
    title="on the mistakes: is the true class's evidence where the predicted class's is?",
    solution="""
    true_maps = gradcam.heatmaps(
        cnn, x_val[wrong_val], layer_name=last_conv.name, class_indices=y_val[wrong_val]
    )
    pred_maps = gradcam.heatmaps(cnn, x_val[wrong_val], layer_name=last_conv.name)
    pairs = zip(true_maps, pred_maps, strict=True)
    same_peak = np.mean([t.argmax() == p.argmax() for t, p in pairs])  # same hottest cell
    same_place = bool(same_peak > 0.5)
    """,
)
def _true_class_heatmaps(model, images, labels, layer_name, true_maps, same_peak, same_place):
    from helpers import gradcam

    labels = np.asarray(labels).reshape(-1)
    right = gradcam.heatmaps(model, images, layer_name=layer_name, class_indices=labels)
    predicted = gradcam.heatmaps(model, images, layer_name=layer_name)
    true_maps = np.asarray(true_maps, dtype="float32")
    if true_maps.shape != right.shape:
        return f"true_maps should have shape {right.shape}: one heat map per image"
    if not np.allclose(true_maps, right, atol=1e-3):
        if np.allclose(true_maps, predicted, atol=1e-3):
            return "those are the predicted class's maps: pass class_indices=the true labels"
        return "compute true_maps with gradcam.heatmaps(..., class_indices=the true labels)"
    peaks = [t.argmax() == p.argmax() for t, p in zip(right, predicted, strict=True)]
    share = float(np.mean(peaks))
    if not is_number(same_peak) or not math.isclose(float(same_peak), share, abs_tol=1e-6):
        return (
            "same_peak is the share of images whose hottest cell (argmax of the map) is the "
            "same in the true-class and the predicted-class heat map"
        )
    if not isinstance(same_place, bool | np.bool_) or bool(same_place) != (share > 0.5):
        return f"same_place should be True when same_peak ({share:.2f}) is above 0.5"
    return None

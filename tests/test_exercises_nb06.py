"""Exercises of notebook 06: the solutions pass, typical wrong answers get their hint."""

import numpy as np

from exercises import NOT_ATTEMPTED, verdict

MATRIX = np.array([[40, 25, 3], [4, 30, 2], [5, 5, 43]])
PRECISION, RECALL = 30 / 60, 30 / 36
F1 = 2 * PRECISION * RECALL / (PRECISION + RECALL)


def test_dog_precision_recall_f1_from_a_confusion_matrix():
    assert verdict("06.1", MATRIX, PRECISION, RECALL, F1) is None
    assert verdict("06.1", MATRIX, 0.5, 0.83, 0.63) is None  # two decimals suffice
    assert "column" in verdict("06.1", MATRIX, RECALL, PRECISION, F1)  # row and column swapped
    assert "harmonic mean" in verdict("06.1", MATRIX, PRECISION, RECALL, (PRECISION + RECALL) / 2)
    assert verdict("06.1", MATRIX, ..., RECALL, F1) == NOT_ATTEMPTED


def test_f1_from_counts():
    def right(tp, fp, fn):
        return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)

    def no_guard(tp, fp, fn):
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        return 2 * precision * recall / (precision + recall)

    def average(tp, fp, fn):
        return 0.0 if tp == 0 else (tp / (tp + fp) + tp / (tp + fn)) / 2

    def placeholder(tp, fp, fn): ...

    assert verdict("06.2", right) is None
    assert "divides by zero" in verdict("06.2", no_guard)
    assert "plain average" in verdict("06.2", average)
    assert verdict("06.2", placeholder) == NOT_ATTEMPTED


def test_pair_ensemble_on_validation():
    labels = np.array([0, 1, 2, 0])
    # a is right on images 0 and 1, b on 0 and 2; averaged they are right on 0, 1 and 2.
    a = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.6, 0, 0.4], [0.1, 0.9, 0]])
    b = np.array([[0.9, 0.1, 0], [0.6, 0.3, 0.1], [0.1, 0, 0.9], [0.1, 0.9, 0]])
    probas = {"a": a, "b": b, "c": b}
    assert verdict("06.3", probas, labels, ["a", "b"], 0.75, True) is None
    assert "one member's accuracy" in verdict("06.3", probas, labels, ["a", "b"], 0.5, True)
    assert "compare pair_accuracy" in verdict("06.3", probas, labels, ("a", "b"), 0.75, False)
    assert "two different names" in verdict("06.3", probas, labels, ["a", "a"], 0.75, True)
    assert "two different names" in verdict("06.3", probas, labels, ["a", "z"], 0.75, True)

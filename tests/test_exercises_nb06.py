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


def test_true_class_heat_maps_against_the_predicted_class():
    import keras

    from helpers import gradcam

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    labels = (predicted + 1) % 3  # every image is a mistake
    true_maps = gradcam.heatmaps(model, images, "conv", class_indices=labels)
    pred_maps = gradcam.heatmaps(model, images, "conv")
    pairs = zip(true_maps, pred_maps, strict=True)
    share = float(np.mean([t.argmax() == p.argmax() for t, p in pairs]))

    def answer(maps=true_maps, same_peak=share, same_place=share > 0.5):
        return verdict("06.4", model, images, labels, "conv", maps, same_peak, same_place)

    assert answer() is None
    assert "predicted class's maps" in answer(maps=pred_maps)
    assert "shape" in answer(maps=true_maps[:2])
    assert "hottest cell" in answer(same_peak=share + 0.25)
    assert "above 0.5" in answer(same_place=not share > 0.5)
    assert answer(maps=...) == NOT_ATTEMPTED

"""helpers.evaluation against small cases worked out by hand."""

import warnings

import numpy as np
import pytest

from helpers import evaluation

NAMES = ["cat", "dog", "bird"]


def test_report_matches_hand_computed_two_class_example():
    # 6 cats, 4 dogs. The model finds 4 of the 6 cats and calls 1 dog a cat.
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]
    table = evaluation.report_table(y_true, y_pred, ["cat", "dog"])
    # cat: TP=4, FP=1, FN=2 -> precision 4/5, recall 4/6, F1 = 2PR/(P+R) = 8/11
    assert table.loc["cat", "precision"] == pytest.approx(4 / 5)
    assert table.loc["cat", "recall"] == pytest.approx(4 / 6)
    assert table.loc["cat", "f1-score"] == pytest.approx(8 / 11)
    # dog: TP=3, FP=2, FN=1 -> precision 3/5, recall 3/4, F1 = 2/3
    assert table.loc["dog", "precision"] == pytest.approx(3 / 5)
    assert table.loc["dog", "recall"] == pytest.approx(3 / 4)
    assert table.loc["dog", "f1-score"] == pytest.approx(2 / 3)
    assert table.loc["accuracy", "f1-score"] == pytest.approx(7 / 10)
    assert table.loc["macro avg", "precision"] == pytest.approx((4 / 5 + 3 / 5) / 2)
    assert table.loc["weighted avg", "recall"] == pytest.approx(0.6 * 4 / 6 + 0.4 * 3 / 4)
    assert table.loc["cat", "support"] == 6 and table.loc["dog", "support"] == 4
    assert table.loc["cat", "predicted"] == 5 and table.loc["dog", "predicted"] == 5
    assert list(table.index) == ["cat", "dog", "accuracy", "macro avg", "weighted avg"]


def test_summary_keys_and_values():
    y_true = [0, 0, 1, 1]
    y_pred = [0, 1, 1, 1]
    out = evaluation.summary(y_true, y_pred, ["a", "b"])
    assert out["accuracy"] == pytest.approx(0.75)
    # a: P=1, R=1/2; b: P=2/3, R=1
    assert out["precision_macro"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["recall_macro"] == pytest.approx(0.75)
    assert set(out) == {
        "accuracy",
        *(f"{m}_{a}" for m in ("precision", "recall", "f1") for a in ("macro", "weighted")),
    }


def test_never_predicted_class_gives_zero_precision_without_warning():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 0]  # "bird" is never predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # UndefinedMetricWarning would fail here
        table = evaluation.report_table(y_true, y_pred, NAMES)
    assert evaluation.never_predicted(y_true, y_pred, NAMES) == ["bird"]
    assert table.loc["bird", "precision"] == evaluation.ZERO_DIVISION == 0.0
    assert table.loc["bird", "recall"] == 0.0 and table.loc["bird", "f1-score"] == 0.0
    assert table.loc["bird", "predicted"] == 0
    # cat: P = 2/3 (one bird called cat), dog: P = 2/3
    assert table.loc["cat", "precision"] == pytest.approx(2 / 3)
    assert table.loc["macro avg", "precision"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_single_class_input():
    y_true = [1, 1, 1, 1]
    y_pred = [1, 1, 1, 1]
    assert evaluation.accuracy(y_true, y_pred) == 1.0
    table = evaluation.report_table(y_true, y_pred, NAMES)
    assert table.loc["dog", "precision"] == 1.0 and table.loc["dog", "recall"] == 1.0
    assert table.loc["cat", "support"] == 0 and table.loc["cat", "recall"] == 0.0
    assert evaluation.never_predicted(y_true, y_pred, NAMES) == ["cat", "bird"]
    counts = evaluation.confusion(y_true, y_pred, NAMES)
    assert counts.tolist() == [[0, 0, 0], [0, 4, 0], [0, 0, 0]]
    # without class names, the classes are those seen: a 2x2 matrix up to label 1
    assert evaluation.confusion(y_true, y_pred).shape == (2, 2)


def test_confusion_counts_and_rows_sum_to_one():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 2, 1, 1, 0]
    counts = evaluation.confusion(y_true, y_pred, NAMES)
    assert counts.tolist() == [[1, 1, 1], [0, 2, 0], [1, 0, 0]]
    norm = evaluation.confusion(y_true, y_pred, NAMES, normalize=True)
    np.testing.assert_allclose(norm.sum(axis=1), 1.0)
    np.testing.assert_allclose(norm[0], [1 / 3, 1 / 3, 1 / 3])
    assert np.diag(norm).tolist() == pytest.approx([1 / 3, 1.0, 0.0])  # per-class recall


def test_class_without_true_examples_keeps_a_zero_row_not_nan():
    norm = evaluation.confusion([0, 0, 1], [0, 2, 2], NAMES, normalize=True)
    assert not np.isnan(norm).any()
    np.testing.assert_allclose(norm.sum(axis=1), [1.0, 1.0, 0.0])


def test_most_confused_pairs_sorted_by_count():
    counts = np.array([[5, 3, 0], [1, 6, 2], [4, 0, 7]])
    table = evaluation.most_confused(counts, NAMES, k=3)
    assert table[["true", "predicted", "count"]].values.tolist() == [
        ["bird", "cat", 4],
        ["cat", "dog", 3],
        ["dog", "bird", 2],
    ]
    assert table.loc[0, "share"] == pytest.approx(4 / 11)
    # pairs with count 0 never appear, even when k asks for more
    assert len(evaluation.most_confused(counts, NAMES, k=10)) == 4


def test_top_k_accuracy():
    proba = np.array(
        [
            [0.6, 0.3, 0.1],  # true 0: top-1 hit
            [0.5, 0.4, 0.1],  # true 1: second
            [0.5, 0.4, 0.1],  # true 2: third
            [0.2, 0.3, 0.5],  # true 0: third
        ]
    )
    y_true = [0, 1, 2, 0]
    assert evaluation.top_k_accuracy(y_true, proba, k=1) == pytest.approx(1 / 4)
    assert evaluation.top_k_accuracy(y_true, proba, k=2) == pytest.approx(2 / 4)
    assert evaluation.top_k_accuracy(y_true, proba, k=3) == 1.0
    with pytest.raises(evaluation.EvaluationError, match="k must be"):
        evaluation.top_k_accuracy(y_true, proba, k=4)


def test_ensemble_is_mean_of_members_probabilities():
    rng = np.random.default_rng(0)
    members = [rng.dirichlet(np.ones(3), size=5) for _ in range(3)]
    mean = evaluation.ensemble_proba(members)
    np.testing.assert_allclose(mean, (members[0] + members[1] + members[2]) / 3)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    with pytest.raises(evaluation.EvaluationError, match="disagree"):
        evaluation.ensemble_proba([members[0], members[1][:4]])
    with pytest.raises(evaluation.EvaluationError, match="at least one"):
        evaluation.ensemble_proba([])


def test_ensemble_can_beat_every_member():
    # Each member is wrong on a different image; the average is right on all three.
    y_true = np.array([0, 1, 2])
    a = np.array([[0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])  # wrong on 0
    b = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])  # wrong on 1
    c = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]])  # wrong on 2
    table = evaluation.compare_members(y_true, {"a": a, "b": b, "c": c}, k=2)
    assert table.loc["a", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["ensemble", "accuracy"] == 1.0
    assert table.loc["ensemble", "gain"] == pytest.approx(1 / 3)
    assert table.loc["a", "top-2 accuracy"] == 1.0


def test_misclassified_most_confident_first():
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    table = evaluation.misclassified([0, 0, 1, 2], proba, NAMES)
    assert table["index"].tolist() == [1, 2]
    assert table["true"].tolist() == ["cat", "dog"]
    assert table["predicted"].tolist() == ["dog", "cat"]
    assert table["confidence"].tolist() == pytest.approx([0.7, 0.6])
    assert len(evaluation.misclassified([0, 0, 1, 2], proba, NAMES, n=1)) == 1


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        ([0, 1], [0], "same images"),
        ([], [], "empty"),
        ([[0.2, 0.8]], [1], "integer class labels"),
        ([0, 5], [0, 1], "outside the 3 class names"),
        ([0, -1], [0, 1], "0 or more"),
    ],
)
def test_bad_labels_say_what_to_do(y_true, y_pred, match):
    with pytest.raises(evaluation.EvaluationError, match=match):
        evaluation.report_table(y_true, y_pred, NAMES)


def _tiny_model(name="tiny"):
    import keras

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name=name
    )
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def test_saved_models_and_members(tmp_path, capsys):
    flat = tmp_path / "03_flat.keras"
    run = tmp_path / "runs" / "04_run" / "best.keras"
    run.parent.mkdir(parents=True)
    _tiny_model().save(flat)
    _tiny_model().save(run)
    (tmp_path / "runs" / "04_run" / "notes.txt").write_text("not a model")
    found = evaluation.saved_models(["runs/0[345]_*/best.keras", "0[345]_*.keras"], tmp_path)
    assert found == {"03_flat": flat, "04_run": run}
    members = evaluation.load_members(found, input_shape=(4,), n_classes=3)
    assert list(members) == ["03_flat", "04_run"]
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    assert evaluation.predict_proba(members["04_run"], x).shape == (5, 3)
    assert evaluation.load_members(found) == {}  # not 32x32x3 -> 10: skipped, said why
    assert "skipped 03_flat" in capsys.readouterr().out


def test_load_or_train_loads_when_saved_else_trains_and_says_so(tmp_path, capsys):
    calls = []

    def train():
        calls.append(1)
        return _tiny_model("fresh")

    def found():
        return evaluation.load_members(evaluation.saved_models(["03_*.keras"], tmp_path))

    name, model, loaded = evaluation.load_or_train(found(), train)
    assert (name, loaded, calls) == ("fresh", False, [1])
    assert "quick model is trained now instead" in capsys.readouterr().out

    saved = _tiny_model("saved")
    saved.save(tmp_path / "03_model.keras")
    import keras

    keras_input = keras.Input((32, 32, 3))
    real = keras.Model(keras_input, keras.layers.Dense(10)(keras.layers.Flatten()(keras_input)))
    real.save(tmp_path / "03_real.keras")
    name, model, loaded = evaluation.load_or_train(found(), train)
    assert (name, loaded, calls) == ("03_real", True, [1])  # 03_model skipped: wrong shapes
    assert "Loaded 03_real" in capsys.readouterr().out
    x = np.zeros((2, 32, 32, 3), "float32")
    np.testing.assert_allclose(evaluation.predict_proba(model, x), real.predict(x, verbose=0))


def test_load_or_train_keeps_the_saved_model_best_on_validation(tmp_path, capsys):
    import keras

    def constant(name, label):
        """A model that predicts ``label`` for every image."""
        inputs = keras.Input((32, 32, 3))
        logits = keras.layers.Dense(10, kernel_initializer="zeros")(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, keras.layers.Activation("softmax")(logits), name=name)
        model.layers[-2].bias.assign(keras.utils.to_categorical(label, 10))
        return model

    constant("a", 0).save(tmp_path / "03_a.keras")  # first by name
    constant("b", 7).save(tmp_path / "05_b.keras")
    x_val, y_val = np.zeros((4, 32, 32, 3), "float32"), np.array([7, 7, 7, 0])
    saved = evaluation.load_members(evaluation.saved_models(["*.keras"], tmp_path))
    name, _, loaded = evaluation.load_or_train(saved, None, (x_val, y_val))
    out = capsys.readouterr().out
    assert (name, loaded) == ("05_b", True)
    assert "03_a: 25.0% on the validation split" in out and "05_b: 75.0%" in out
    assert evaluation.load_or_train(saved, None)[0] == "03_a"  # no validation


def test_generalization_gap_uses_the_same_measure_on_both_sides():
    class Lookup:
        """Predicts class 0 for every image whose first value is 0, else class 1."""

        def __call__(self, x, training=False):
            first = np.asarray(x)[:, 0]
            return np.stack([first == 0, first != 0], axis=1).astype(float)

    x_train, y_train = np.array([[0], [1], [0], [1]]), np.array([0, 1, 0, 1])  # all right
    x_val, y_val = np.array([[0], [1], [1], [1]]), np.array([0, 0, 0, 1])  # 2 of 4 right
    out = evaluation.generalization_gap(Lookup(), (x_train, y_train), (x_val, y_val))
    assert out == {"train accuracy": 1.0, "val accuracy": 0.5, "gap": 0.5}


def test_predict_proba_gives_what_predict_gives_batch_by_batch():
    """Called directly on each batch, so predicting with many models traces no graphs."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(flat))
    proba = evaluation.predict_proba(model, x, batch_size=128)  # 128 + 128 + 44
    assert proba.shape == (300, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, model.predict(x, verbose=0), atol=1e-6)

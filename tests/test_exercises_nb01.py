"""Exercises of notebook 01: the solutions pass, typical wrong answers get their hint."""

import keras
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

import exercises
from exercises import verdict


def test_memory_of_the_training_set():
    right = 50_000 * 32 * 32 * 3
    assert verdict("01.1", right, 4 * right) is None
    assert "3 colour values" in verdict("01.1", 50_000 * 32 * 32, 4 * right)
    assert "training set only" in verdict("01.1", 60_000 * 32 * 32 * 3, 4 * right)
    assert "that is float64" in verdict("01.1", right, 8 * right)
    assert verdict("01.1", ..., ...) == exercises.NOT_ATTEMPTED


@pytest.fixture
def labels():
    return np.repeat(np.arange(10), 20)  # 200 labels, 20 per class, sorted


def test_stratified_split(labels):
    x = np.zeros((len(labels), 2, 2, 3), dtype="uint8")
    _, _, y_tr, y_va = train_test_split(x, labels, test_size=0.2, stratify=labels, random_state=0)
    assert verdict("01.2", labels, y_tr, y_va) is None
    # Not stratified: the last 20% of sorted labels are all of two classes.
    assert "stratify=y" in verdict("01.2", labels, labels[:160], labels[160:])
    assert "test_size=0.2" in verdict("01.2", labels, labels[:180], labels[180:])


def test_augmentation_pipeline():
    right = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"),
        ]
    )
    assert verdict("01.3", right) is None
    upside_down = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical"),
            keras.layers.RandomTranslation(0.1, 0.1),
        ]
    )
    assert "left-right only" in verdict("01.3", upside_down)
    no_shift = keras.Sequential([keras.layers.RandomFlip("horizontal")])
    assert "RandomTranslation" in verdict("01.3", no_shift)
    cropped = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1),
            keras.layers.RandomCrop(28, 28),
        ]
    )
    assert "keep the image shape" in verdict("01.3", cropped)

"""Grad-CAM (``helpers.gradcam``) on TensorFlow, JAX and PyTorch.

The Keras backend is fixed when ``keras`` is first imported, so each backend runs the
same script in its own Python process (``tests.test_backends.run_script``). The models
are tiny and built with fixed weights, so each backend takes seconds.
"""

import importlib.util

import numpy as np
import pytest

from tests.test_backends import run_script

SCRIPT = r"""
import json
import numpy as np
import keras
from keras import layers
from helpers import capstone, gradcam, models, transfer

rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
positive = keras.initializers.Constant(0.1)
report = {"backend": keras.backend.backend()}
mask = np.zeros((1, 16, 16, 1), "float32")
mask[:, :8, :8] = 1  # the top-left quarter


class CornerMask(layers.Layer):
    # A layer, not `x * mask`: Keras marks a tensor times a NumPy constant as sparse,
    # and torch cannot make an Input of it.
    def call(self, x):
        return keras.ops.multiply(x, mask)


def corner_model(mask_after_conv):
    # Only the top-left quarter reaches the classifier: the image is masked before the
    # convolution, or the convolution's feature maps are masked after it.
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    x = layers.Rescaling(1 / 255)(inputs)
    x = x if mask_after_conv else x * mask
    x = layers.Conv2D(4, 3, padding="same", activation="relu", use_bias=False,
                      kernel_initializer=positive, name="conv")(x)
    x = CornerMask(name="mask")(x) if mask_after_conv else x
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax", kernel_initializer=positive)(x)
    return keras.Model(inputs, outputs, name="corner")


def nested_model():
    inner = keras.Input((16, 16, 3))
    y = layers.Conv2D(4, 3, padding="same", activation="relu", name="inner_conv1")(inner)
    y = layers.Conv2D(6, 3, padding="same", activation="relu", name="inner_conv2")(y)
    backbone = keras.Model(inner, y, name="backbone")
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    x = backbone(layers.Rescaling(1 / 255)(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="nested")


def skip_model():
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(
        layers.Rescaling(1 / 255)(inputs))
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(a)
    x = layers.Conv2D(4, 3, strides=2, name="after_add")(layers.Add(name="add")([a, b]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="skip")


def peaks(maps):
    return [[int(i) for i in np.unravel_index(m.argmax(), m.shape)] for m in maps]


def error(function):
    try:
        function()
    except gradcam.GradCamError as caught:
        return str(caught)
    return "no error"


for where in ("before", "after"):
    maps = gradcam.heatmaps(corner_model(where == "after"), images)
    report[f"corner_{where}"] = {
        "shape": list(maps.shape), "dtype": str(maps.dtype),
        "range": [float(maps.min()), float(maps.max())],
        # padding="same" lets the corner reach one pixel further (row/column 8).
        "mass_in_corner": float(maps[:, :9, :9].sum() / maps.sum()),
        "peaks": peaks(maps),
    }

nested = nested_model()
features, head = gradcam.split(nested)
probabilities = keras.ops.softmax(head(features(images)))
report["nested"] = {
    "names": gradcam.feature_layer_names(nested),
    "default": list(gradcam.heatmaps(nested, images).shape),
    "inner": list(gradcam.heatmaps(nested, images, "inner_conv1", class_indices=1).shape),
    "head_gives_logits": bool(np.allclose(
        keras.ops.convert_to_numpy(probabilities), nested.predict(images, verbose=0),
        atol=1e-5)),
}
skip = skip_model()
maps = gradcam.heatmaps(skip, images, class_indices=[0, 1, 2, 0, 1])
report["skip"] = {
    "default": list(maps.shape), "cut_at_a": list(gradcam.heatmaps(skip, images, "a").shape),
    "cut_at_b": error(lambda: gradcam.heatmaps(skip, images, "b")),
}
sequential = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(4, 3, name="conv"),
                               layers.Flatten(), layers.Dense(3, activation="softmax")])
report["sequential"] = list(gradcam.heatmaps(sequential, images.astype("float32")).shape)
report["unknown"] = error(lambda: gradcam.heatmaps(nested, images, layer_name="nope"))
report["not_4d"] = error(lambda: gradcam.heatmaps(nested, images, layer_name="scores"))
flat = keras.Sequential([keras.Input((16, 16, 3)), layers.Flatten(), layers.Dense(3)])
report["no_4d"] = error(lambda: gradcam.heatmaps(flat, images))

# The course's models: notebook 02's CNN, the recipe (a nested augmentation model),
# notebook 07's capstone (a softmax layer of its own), notebook 04's nested VGG16.
cifar = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
vgg = transfer.add_head(transfer.build_backbone(32, weights=None)).model
small = capstone.Recipe(widths=(8, 8, 16))
course = {"baseline": models.build_baseline(), "recommended": models.build_recommended(),
          "capstone": capstone.build_capstone(small, cifar), "vgg": vgg}
report["course"] = {}
for name, model in course.items():
    maps = gradcam.heatmaps(model, cifar)
    report["course"][name] = {"shape": list(maps.shape), "finite": bool(np.isfinite(maps).all()),
                              "default": gradcam.feature_layer_names(model)[-1]}
report["vgg_inner"] = list(gradcam.heatmaps(vgg, cifar, layer_name="block5_conv3").shape)
print("REPORT " + json.dumps(report))
"""


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


BACKENDS = [
    "tensorflow",
    pytest.param("jax", marks=pytest.mark.skipif(_missing("jax"), reason="JAX not installed")),
    pytest.param(
        "torch", marks=pytest.mark.skipif(_missing("torch"), reason="PyTorch not installed")
    ),
]


@pytest.fixture(scope="module", params=BACKENDS)
def report(request):
    """What the script saw on one backend (one subprocess per backend)."""
    seen = run_script(SCRIPT, {"KERAS_BACKEND": request.param})
    assert seen["backend"] == request.param
    return seen


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_model_that_sees_one_corner_lights_up_that_corner(report, where):
    corner = report[f"corner_{where}"]
    assert corner["shape"] == [5, 16, 16] and corner["dtype"] == "float32"
    assert corner["range"] == [0.0, 1.0]
    assert corner["mass_in_corner"] > 0.99
    assert all(row < 8 and col < 8 for row, col in corner["peaks"])


def test_a_layer_inside_a_nested_backbone_can_be_chosen(report):
    nested = report["nested"]
    assert nested["names"][1:] == ["inner_conv1", "inner_conv2", "backbone"]  # 0: Rescaling
    assert nested["default"] == [5, 16, 16] and nested["inner"] == [5, 16, 16]
    # The head ends before the softmax: the softmax of its scores is the model's output.
    assert nested["head_gives_logits"]


def test_skip_connections_are_cut_only_where_the_model_can_be_cut(report):
    skip = report["skip"]
    assert skip["default"] == [5, 7, 7] and skip["cut_at_a"] == [5, 16, 16]
    assert "does not cut model 'skip' in two" in skip["cut_at_b"]
    assert "'after_add'" in skip["cut_at_b"]  # it names a layer that works


def test_sequential_models_work(report):
    assert report["sequential"] == [5, 14, 14]


def test_clear_errors_name_the_layers_there_are(report):
    assert "no layer 'nope'" in report["unknown"]
    assert "inner_conv1, inner_conv2, backbone" in report["unknown"]
    assert "not 4-D" in report["not_4d"]
    assert "no layer with a 4-D output" in report["no_4d"]


def test_the_course_models(report):
    course = report["course"]
    assert course["baseline"] == {"shape": [3, 2, 2], "finite": True, "default": "pool3"}
    assert course["recommended"]["shape"] == [3, 4, 4] and course["recommended"]["finite"]
    assert course["capstone"]["shape"][0] == 3 and course["capstone"]["finite"]
    assert course["vgg"]["default"] == "vgg16" and course["vgg"]["finite"]
    assert report["vgg_inner"] == [3, 2, 2]


def test_weigh_is_grad_cam_s_formula():
    from helpers import gradcam

    rng = np.random.default_rng(1)
    maps = rng.random((2, 3, 3, 4)).astype("float32")
    gradients = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    weights = gradients.mean(axis=(1, 2))
    expected = np.maximum((maps * weights[:, None, None, :]).sum(axis=-1), 0)
    for i in range(2):
        if expected[i].max() > 0:
            expected[i] /= expected[i].max()
    assert np.allclose(gradcam.weigh(maps, gradients), expected, atol=1e-6)
    assert not gradcam.weigh(maps, -np.abs(gradients) - 1).any()  # no evidence: all zero


def test_show_draws_one_panel_per_image():
    import matplotlib.pyplot as plt

    from helpers import gradcam

    images = np.zeros((3, 8, 8, 3), np.uint8)
    fig = gradcam.show(images, np.ones((3, 2, 2)), titles=["a", "b", "c"])
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "b"
    plt.close(fig)

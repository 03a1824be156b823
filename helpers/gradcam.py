"""Grad-CAM: where in the image a CNN looked for a class (Selvaraju et al., ICCV 2017,
arXiv:1610.02391). Notebook 06 writes each step in its cells first; this module packages them:
``split`` cuts a model into ``features`` (images -> a layer's feature maps) and ``head`` (feature
maps -> class scores before the softmax), ``score_gradients`` differentiates the class score on
the active backend, ``weigh`` turns maps and gradients into heat maps, ``heatmaps`` runs the
three and ``show`` draws them. Functional models (with skip connections) and Sequential ones
work, and a nested backbone (``keras.applications``) is opened up so its layers can be chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from helpers import plots

#: Images per forward/backward pass in ``heatmaps`` (keeps memory flat for big models).
BATCH_SIZE = 32


class GradCamError(ValueError):
    """The model or the layer cannot be used for Grad-CAM; the message says why."""


def _is_subgraph(layer) -> bool:
    """True for a nested Functional or Sequential model, which ``_inline`` opens up."""
    return isinstance(layer, keras.Model) and (
        isinstance(layer, keras.Sequential) or hasattr(layer, "_run_through_graph")
    )


def _inline(model, inputs, calls: list, cut=None):
    """Call ``model``'s own layers (same weights) on ``inputs`` one by one, nested models too,
    appending ``(layer, args, output)`` to ``calls``; returns the output. Only the graph is new,
    so every layer's output, also inside a nested backbone, is a tensor of one graph. With
    ``cut=(layer_name, tensor)``, that layer's output is replaced by ``tensor``."""

    def call(layer, *args, **kwargs):
        if cut is not None and layer.name == cut[0]:
            output = cut[1]
        elif _is_subgraph(layer):
            output = _inline(layer, args[0], calls, cut)
        else:
            output = layer(*args, **kwargs)
        calls.append((layer, args, output))
        return output

    if isinstance(model, keras.Sequential):
        x = inputs
        for layer in model.layers:
            x = call(layer, x)
        return x
    expected = model.inputs[0].dtype
    if len(model.inputs) == 1 and getattr(inputs, "dtype", expected) != expected:
        inputs = keras.ops.cast(inputs, expected)  # what calling the model would do
    # The graph walk that keras.models.clone_model(call_function=...) does (Keras 3's
    # Functional._run_through_graph), without building a model around it: a model built
    # on intermediate tensors gets a copy of its graph, cut off from the enclosing one.
    return model._run_through_graph(inputs, operation_fn=lambda layer: layer, call_fn=call)


def _model_inputs(model):
    """Fresh ``keras.Input`` tensors shaped like the model's inputs."""
    try:
        specs = model.inputs
    except (AttributeError, ValueError) as error:
        raise GradCamError(
            f"model {model.name!r} has no defined input; build it with keras.Input(...) first"
        ) from error
    fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in specs]
    return fresh[0] if len(fresh) == 1 else fresh


def _logits(layer, args):
    """The class scores before ``layer``'s softmax: its input for an Activation/Softmax
    layer, else a linear twin of the layer (same weights, no activation) on its input."""
    if isinstance(layer, keras.layers.Activation | keras.layers.Softmax):
        return args[0]
    config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_logits"}
    twin = layer.__class__.from_config(config)
    logits = twin(args[0])
    twin.set_weights(layer.get_weights())
    return logits


def _graph(model, cut=None):
    """``(inputs, outputs, calls)`` of the opened-up model (``cut``: see ``_inline``);
    ``outputs`` are the class scores before a final softmax (Grad-CAM's score, as in the
    paper)."""
    inputs, calls = _model_inputs(model), []
    outputs = _inline(model, inputs, calls, cut)
    last, args, output = calls[-1]
    softmax = getattr(getattr(last, "activation", None), "__name__", "") == "softmax"
    if output is outputs and (softmax or isinstance(last, keras.layers.Softmax)):
        outputs = _logits(last, args)
    return inputs, outputs, calls


def feature_layer_names(model) -> list[str]:
    """Names of the layers with a 4-D output (batch, height, width, channels), nested
    models' layers included, in the order the model calls them."""
    _, _, calls = _graph(model)
    return [layer.name for layer, _, out in calls if len(getattr(out, "shape", ())) == 4]


def _chosen_output(model, calls, layer_name):
    """The graph tensor of ``layer_name`` (default: the last 4-D output), checked."""
    by_name = {layer.name: out for layer, _, out in calls}
    names = [name for name, out in by_name.items() if len(getattr(out, "shape", ())) == 4]
    if not names:
        raise GradCamError(
            f"model {model.name!r} has no layer with a 4-D output (batch, height, width, "
            "channels): Grad-CAM needs the feature maps of a convolutional layer"
        )
    if layer_name is None:
        return names[-1], by_name[names[-1]]
    if layer_name not in names:
        known = "" if layer_name not in by_name else " (its output is not 4-D feature maps)"
        raise GradCamError(
            f"no layer {layer_name!r} with feature maps in model {model.name!r}{known}; "
            f"layers with a 4-D output: {', '.join(names)}"
        )
    return layer_name, by_name[layer_name]


def _reaches(tensor, sources) -> bool:
    """True when ``tensor`` is computed from one of ``sources`` (walking back through the
    Keras graph that recorded it: ``_keras_history``, the walk Keras's Functional does)."""
    targets, stack, seen = {id(t) for t in sources}, [tensor], set()
    while stack:
        t = stack.pop()
        if id(t) in targets:
            return True
        history = getattr(t, "_keras_history", None)
        if id(t) in seen or history is None:
            continue
        seen.add(id(t))
        stack.extend(history.operation._inbound_nodes[history.node_index].input_tensors)
    return False


def split(model, layer_name: str | None = None):
    """``(features, head)``: ``features`` maps images to ``layer_name``'s feature maps
    (default: the last layer with a 4-D output, also inside a nested backbone), ``head``
    maps those feature maps to the class scores before the softmax. Both are Keras models
    sharing ``model``'s layers and weights."""
    inputs, _, calls = _graph(model)
    name, feature_maps = _chosen_output(model, calls, layer_name)
    features = keras.Model(inputs, feature_maps, name=f"{model.name}_features")
    # The head starts from a fresh input in place of the chosen layer's output: a model
    # built on an intermediate tensor fails when called on Keras 3.13 (Colab's version).
    maps = keras.Input(batch_shape=feature_maps.shape, dtype=feature_maps.dtype)
    images, scores, _ = _graph(model, cut=(name, maps))
    if _reaches(scores, keras.tree.flatten(images)):
        raise GradCamError(
            f"layer {name!r} does not cut model {model.name!r} in two: part of the model "
            "(a skip connection, or a second input) goes around it; choose a layer after "
            f"the last merge, e.g. the default {feature_layer_names(model)[-1]!r}"
        )
    return features, keras.Model(maps, scores, name=f"{model.name}_head")


def class_scores(scores, class_indices):
    """The sum over the batch of each image's score for its class: one number to
    differentiate (each image's score depends on its own feature maps only)."""
    indices = keras.ops.convert_to_tensor(np.asarray(class_indices).reshape(-1, 1), "int32")
    return keras.ops.sum(keras.ops.take_along_axis(scores, indices, axis=1))


def _gradients_tensorflow(head, feature_maps, class_indices):
    """TensorFlow: run the head on a tape that watches the feature maps."""
    import tensorflow as tf

    maps = tf.convert_to_tensor(feature_maps)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        score = class_scores(head(maps, training=False), class_indices)
    return tape.gradient(score, maps)


def _gradients_jax(head, feature_maps, class_indices):
    """JAX: ``jax.grad`` of a pure function of the feature maps, the head's
    ``stateless_call`` with its variables' values."""
    import jax

    trainable = [v.value for v in head.trainable_variables]
    non_trainable = [v.value for v in head.non_trainable_variables]

    def score(maps):
        scores, _ = head.stateless_call(trainable, non_trainable, maps, training=False)
        return class_scores(scores, class_indices)

    return jax.grad(score)(jax.numpy.asarray(feature_maps))


def _gradients_torch(head, feature_maps, class_indices):
    """PyTorch: feature maps that require a gradient, then autograd from the score."""
    import torch

    maps = keras.ops.convert_to_tensor(feature_maps).detach().requires_grad_(True)
    with torch.enable_grad():
        score = class_scores(head(maps, training=False), class_indices)
        (gradients,) = torch.autograd.grad(score, maps)
    return gradients


_GRADIENTS = {
    "tensorflow": _gradients_tensorflow,
    "jax": _gradients_jax,
    "torch": _gradients_torch,
}


def gradient_function(backend: str | None = None):
    """The function that takes the gradient on ``backend`` (default: the active one)."""
    backend = backend or keras.backend.backend()
    if backend not in _GRADIENTS:
        raise GradCamError(f"Grad-CAM runs on {sorted(_GRADIENTS)}, not on {backend!r}")
    return _GRADIENTS[backend]


def score_gradients(head, feature_maps, class_indices) -> np.ndarray:
    """d(class score) / d(feature maps) for each image, shaped like ``feature_maps``:
    ``tf.GradientTape`` on TensorFlow, ``jax.grad`` of ``head.stateless_call`` on JAX,
    autograd (``requires_grad`` on the feature maps) on PyTorch."""
    gradients = gradient_function()(head, feature_maps, class_indices)
    return keras.ops.convert_to_numpy(gradients)


def weigh(feature_maps, gradients) -> np.ndarray:
    """Grad-CAM's heat maps ``(n, h, w)`` in [0, 1]: each channel's weight is its gradient
    averaged over the map; the weighted channels are summed, passed through a ReLU (only
    evidence *for* the class) and divided by each map's maximum (an all-zero map stays 0)."""
    maps = np.asarray(feature_maps, dtype="float32")
    weights = np.asarray(gradients, dtype="float32").mean(axis=(1, 2))  # (n, channels)
    cam = np.maximum(np.einsum("nhwc,nc->nhw", maps, weights), 0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0).astype("float32")


def _batch_heatmaps(features, head, images, class_indices):
    """Heat maps of one batch; ``class_indices`` None: each image's top-scoring class."""
    feature_maps = features(images, training=False)
    if class_indices is None:
        scores = keras.ops.convert_to_numpy(head(feature_maps, training=False))
        class_indices = scores.argmax(axis=1)
    gradients = score_gradients(head, feature_maps, class_indices)
    return weigh(keras.ops.convert_to_numpy(feature_maps), gradients)


def heatmaps(model, images, layer_name: str | None = None, class_indices=None) -> np.ndarray:
    """Grad-CAM heat maps, float32 ``(n, hh, ww)`` in [0, 1] at ``layer_name``'s resolution.

    ``images``: ``(n, h, w, 3)`` as ``model`` takes them (uint8 for the course's models).
    ``layer_name``: default the last layer with a 4-D output, also inside a nested
    backbone. ``class_indices``: one class per image (default: its predicted class).
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise GradCamError(f"images must be (n, height, width, channels), got {images.shape}")
    if class_indices is not None:
        class_indices = np.broadcast_to(np.asarray(class_indices, dtype="int64"), len(images))
    features, head = split(model, layer_name)
    batches = []
    for start in range(0, len(images), BATCH_SIZE):
        part = slice(start, start + BATCH_SIZE)
        indices = None if class_indices is None else class_indices[part]
        batches.append(_batch_heatmaps(features, head, images[part], indices))
    return np.concatenate(batches).astype("float32")


def show(images, heatmaps: np.ndarray, titles: Sequence[str] | None = None, size: float = 1.5):
    """Each image with its heat map laid over it (bilinearly upsampled to the image, the
    "jet" colour map: red = most weight), in a grid; returns the matplotlib Figure."""
    images = np.asarray(images)
    if images.dtype != np.uint8 and images.max() > 1.0:  # floats in 0-255, as Keras reads files
        images = np.clip(images, 0, 255).astype("uint8")
    fig = plots.image_grid(images, titles, ncols=max(1, min(8, len(images))), size=size)
    for ax, heatmap in zip(fig.axes, heatmaps, strict=False):
        extent = ax.images[0].get_extent()
        ax.imshow(
            heatmap, "jet", alpha=0.4, vmin=0, vmax=1, interpolation="bilinear", extent=extent
        )
    return fig

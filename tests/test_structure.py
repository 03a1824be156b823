"""The shape of the course's code: the lesson's Keras calls live in the notebooks' own cells,
and ``helpers`` stays plumbing with a clean import hierarchy and short functions.

A notebook teaches the Keras code of its lesson in its cells before a helper packages it;
``REQUIRED_CALLS`` lists, per notebook, the calls that must stay in its code cells so they
cannot quietly move back into ``helpers``.
"""

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
HELPERS = sorted((ROOT / "helpers").glob("*.py"))
MAX_FUNCTION_LINES = 60

REQUIRED_CALLS = {
    "01": ["train_test_split(", "stratify="],
    "02": [
        "keras.Sequential(",
        "keras.Model(",
        "layers.Conv2D(",
        "layers.MaxPooling2D(",
        "layers.Flatten(",
        "layers.Dense(",
        'padding="same"',
        "strides=",
        "keras.utils.to_categorical(",
        '"categorical_crossentropy"',
        '"sparse_categorical_crossentropy"',
        ".compile(",
        ".fit(",
    ],
    "03": [
        "model.compile(",
        "model.fit(",
        "callbacks=[",
        "keras.callbacks.EarlyStopping(",
        "keras.callbacks.ModelCheckpoint(",
        "keras.callbacks.ReduceLROnPlateau(",
        "keras.optimizers.AdamW(",
        "keras.optimizers.schedules.",
        "label_smoothing=",
    ],
    "04": [
        "keras.applications.VGG16(",
        "include_top=False",
        ".trainable = False",
        ".trainable = True",
        "block5",
    ],
    "05": [
        "layers.Dropout(",
        "kernel_regularizer=keras.regularizers.L2(",
        "layers.BatchNormalization(",
        "keras.callbacks.EarlyStopping(",
    ],
    "07": ["use_ema=True", "layers.Conv2D(", "trainable=False"],
    "08": [
        "layers.SeparableConv2D(",
        "layers.Add()",
        "layers.GlobalAveragePooling2D(",
        "keras.callbacks.Callback",
        "kt.BayesianOptimization",
        "hp.Int(",
        'sampling="log"',
        "overwrite=False",
    ],
    "09": [
        "layers.Conv2DTranspose(",
        "layers.GRU(",
        "layers.Reshape((32, 96))",
        "layers.MultiHeadAttention(",
        "layers.LayerNormalization(",
        "extract_patches(",
        "PCA(",
        ".trainable = False",
    ],
    "06": [
        "precision_score(",
        "classification_report(",
        "confusion_matrix(",
        "keras.Model(",
        ".set_weights(",
        "gradcam.score_gradients(",
        'np.einsum("nhwc,nc->nhw"',
        "np.maximum(cam, 0)",
        "gradcam.heatmaps(",
    ],
    "10": [
        "keras.utils.get_file(",
        "file_hash=",
        "keras.utils.image_dataset_from_directory(",
        "train_test_split(",
        "stratify=",
        "compute_class_weight(",
        "class_weight=",
        "keras.applications.VGG16(",
        "keras.applications.MobileNetV3Small(",
        "include_top=False",
        ".trainable = False",
        ".trainable = True",
        "layers.BatchNormalization",
        "layers.RandomFlip(",
        "model.save(",
        "model.export(",
        "helpers.predict",
        "gradcam.heatmaps(",
    ],
}


def notebook_code(number: str) -> str:
    """All code cells of notebook ``number`` joined together."""
    (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("number", sorted(REQUIRED_CALLS))
def test_the_lesson_code_is_in_the_notebook(number):
    code = notebook_code(number)
    missing = [call for call in REQUIRED_CALLS[number] if call not in code]
    assert not missing, f"notebook {number} must write these in its own cells: {missing}"


def _helpers_imports(path: Path) -> set[str]:
    """The helpers modules that ``path`` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "helpers":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("helpers.")}
    return found - {path.stem}


def import_graph() -> dict[str, set[str]]:
    """Module name -> the helpers modules it imports."""
    return {p.stem: _helpers_imports(p) for p in HELPERS if p.stem != "__init__"}


def test_helpers_have_no_import_cycle():
    graph = import_graph()
    done, path = set(), []

    def visit(module):
        if module in path:
            cycle = path[path.index(module) :] + [module]
            pytest.fail("import cycle in helpers: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_config_and_plots_sit_at_the_bottom():
    graph = import_graph()
    assert graph["config"] == set(), "config imports nothing of ours"
    assert not graph["plots"] & {"training", "evaluation"}, "plots draws what it is given"


def test_no_helper_function_is_longer_than_60_lines():
    long = []
    for path in HELPERS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, f"split these functions (at most {MAX_FUNCTION_LINES} lines): {long}"

# The course's two commands: `make lab` (set up and open the course) and `make test` (set up
# and run the tests; the solved notebooks run in `make test-backends`). Both create .venv on
# first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_ARGS ?=

.PHONY: lab test venv mirror clean test-notebooks-full memory test-colab bench test-backends

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; run: make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The Keras backend: unset keeps Keras's own choice (KERAS_BACKEND, ~/.keras/keras.json,
# else TensorFlow); `make lab BACKEND=jax` or `BACKEND=torch` opens the course on another.
BACKEND ?=
TORCH_STAMP := $(VENV)/.torch-installed
BACKEND_DEPS := $(if $(filter torch,$(BACKEND)),$(TORCH_STAMP))

lab: $(STAMP) $(BACKEND_DEPS)
	$(if $(BACKEND),KERAS_BACKEND=$(BACKEND)) $(VENV)/bin/jupyter lab --ServerApp.root_dir=. \
		--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb $(LAB_ARGS)

# PyTorch for the torch backend (requirements-torch.txt), only when asked for.
$(TORCH_STAMP): $(STAMP) requirements-torch.txt
	$(PY) -m pip install --quiet -r requirements-torch.txt
	touch $(TORCH_STAMP)

# The data the notebooks' tests read: without CIFAR10_DIR, a mirror is built from ../shared
# when it is there (offline course machines; elsewhere the notebooks download CIFAR-10 once);
# without IMAGES_DIR, notebook 10 reads a small class folder with a corrupt file, a non-image
# and a duplicate in it (tests/own_images.py), instead of downloading its flower photos.
define TEST_DATA
	if [ -z "$$CIFAR10_DIR" ] && [ -d ../shared/tools ]; then \
		CIFAR10_DIR="$$($(MAKE) --no-print-directory -s mirror)"; export CIFAR10_DIR; \
		echo "CIFAR10_DIR=$$CIFAR10_DIR (built from ../shared)"; fi; \
	if [ -z "$$IMAGES_DIR" ]; then \
		IMAGES_DIR="$$($(1) tests/own_images.py $${OWN_IMAGES_DIR:-/tmp/course-own-images})" \
			|| { echo "tests/own_images.py could not build the test image folder" >&2; exit 1; }; \
		export IMAGES_DIR; echo "IMAGES_DIR=$$IMAGES_DIR (tests/own_images.py)"; fi
endef

# Unit tests, hygiene checks, and every notebook under nbval in fast mode, as a learner opens
# it (exercises unanswered); the runs with every exercise solved are `make test-backends`'.
# A -m of your own in PYTEST_ARGS replaces the -m below.
test: $(STAMP)
	@$(call TEST_DATA,$(PY)); \
	COURSE_FAST=1 $(PY) -m pytest -m "not solved_notebooks" \
		--junitxml=artifacts/notebooks-tensorflow.xml $(PYTEST_ARGS)

# Offline machines: build the CIFAR-10 mirror from ../shared and print its path.
mirror: $(STAMP)
	@$(PY) ../shared/tools/make-cifar10-mirror $${MIRROR_DIR:-/tmp/cifar10-mirror} | tail -n 1

# Every notebook in fast mode on the other Keras backends, each with its own artifacts folder:
# on JAX as a learner opens it (nbval, as `make test` on TensorFlow), on PyTorch, the fastest
# here, with every exercise's solution pasted in and its check asserted (the solved runs of
# tests/test_exercises.py; SOLVED_BACKENDS names the backends that run those instead).
# BACKENDS="jax" runs one.
BACKENDS ?= jax torch
SOLVED_BACKENDS ?= torch
test-backends: $(STAMP) $(if $(filter torch,$(BACKENDS)),$(TORCH_STAMP))
	@$(call TEST_DATA,$(PY)); \
	for backend in $(BACKENDS); do \
		case " $(SOLVED_BACKENDS) " in \
			*" $$backend "*) what="its exercises solved"; \
				tests="tests/test_exercises.py -m solved_notebooks";; \
			*) what="as a learner opens it"; tests="notebooks";; \
		esac; \
		echo "== every notebook, $$what, on the $$backend backend"; \
		KERAS_BACKEND=$$backend COURSE_FAST=1 COURSE_ARTIFACTS=$(CURDIR)/artifacts/backend-$$backend \
			$(PY) -m pytest $$tests -p no:cacheprovider \
			--junitxml=artifacts/backend-$$backend/notebooks.xml $(PYTEST_ARGS) || exit 1; \
	done; \
	$(PY) benchmarks/notebook_times.py $(wildcard artifacts/notebooks-tensorflow.xml) \
		$(foreach b,$(BACKENDS),artifacts/backend-$(b)/notebooks.xml)

# The notebooks in full mode under nbval: the GPU runner's job (hours on a 2-core CPU).
test-notebooks-full: $(STAMP)
	COURSE_FAST=0 $(PY) -m pytest notebooks $(PYTEST_ARGS)

# Peak memory and time of each notebook's kernel in full mode, against Binder's 2 GiB;
# NOTEBOOKS="00 01" runs a subset. Writes benchmarks/results/memory-<machine>-<date>.json.
memory: $(STAMP)
	$(PY) benchmarks/memory.py $(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS))

# Train recipes one after the other with the same time budget; compare validation accuracy,
# record test accuracy. RECIPES="tutorial baseline recommended capstone" BUDGET=600 by default
# (BUDGET=3600: an hour; RECIPES=capstone-no-ema: the capstone without its weight average).
# Writes benchmarks/results/<machine>-<date>-<budget>s.json.
RECIPES ?= tutorial baseline recommended capstone
BUDGET  ?= 600
bench: $(STAMP)
	$(PY) benchmarks/bench.py --recipes $(RECIPES) --budget-seconds $(BUDGET)

# Colab profile: a second virtualenv with Colab's TensorFlow, Keras and ipywidgets
# (requirements-colab.txt, helpers added with --no-deps as on Colab) runs the helpers'
# and exercises' unit tests and notebooks 00 and 03 in fast mode (the solved-notebook runs,
# in `make test-backends`, and the structure and hygiene checks, in `make test`, do not
# depend on versions). Its checkpoints and saved models go to artifacts/colab-profile: an
# older Keras cannot read what a newer one saved.
COLAB_VENV  := .venv-colab
COLAB_PY    := $(COLAB_VENV)/bin/python
COLAB_STAMP := $(COLAB_VENV)/.installed
COLAB_TESTS := tests $(wildcard notebooks/00_*.ipynb notebooks/03_*.ipynb) \
	$(addprefix --ignore=tests/,test_hygiene.py test_browser.py test_binder.py \
		test_binder_env.py test_workflow.py test_lab.py test_structure.py test_exercises.py)

$(COLAB_STAMP): requirements-colab.txt pyproject.toml
	test -x $(COLAB_PY) || $(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_PY) -m pip install --quiet --upgrade pip
	$(COLAB_PY) -m pip install --quiet -r requirements-colab.txt
	$(COLAB_PY) -m pip install --quiet --no-deps -e .
	touch $(COLAB_STAMP)

test-colab: $(COLAB_STAMP)
	@if [ -z "$$CIFAR10_DIR" ] && [ -d ../shared/tools ]; then \
		CIFAR10_DIR="$$($(COLAB_PY) ../shared/tools/make-cifar10-mirror \
			$${MIRROR_DIR:-/tmp/cifar10-mirror} | tail -n 1)"; export CIFAR10_DIR; fi; \
	COURSE_FAST=1 COURSE_ARTIFACTS=$(CURDIR)/artifacts/colab-profile \
		$(COLAB_PY) -m pytest $(COLAB_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts .pytest_cache

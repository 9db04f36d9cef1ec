# `make demo` and `make test` work on a fresh clone: each sets up .venv first. `demo` installs the runtime
# alone (no torch, bpy or dlib); `setup`, `lint` and `test` install the extras too.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
RUNTIME := $(VENV)/.runtime-stamp
# torch comes from the local CPU wheel where pip's find-links has one (see README: GPU users install
# the CUDA build themselves); bpy pins numpy<2 for the whole environment.
EXTRAS := train,export,blender,evaluate,test

.PHONY: setup demo lint test test-slow addon clean

$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	# training/ and export/ are not in the runtime wheel: the checkout itself goes on the venv's path.
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/reggan-plugin-checkout.pth"
	touch $(RUNTIME) $@  # the full install holds the runtime: `demo` installs nothing more

setup: $(STAMP)

demo: $(RUNTIME)
	$(BIN)/reggan-plugin render --frames samples/frames --out out/demo --expression happy --faces samples/faces.json
	@echo
	@echo "Done: the input frames are in samples/frames/, the happy ones in out/demo/."
	@echo "Try another: $(BIN)/reggan-plugin render --frames samples/frames --out out/sad --expression sad --intensity 0.7"

lint: $(STAMP)  # static checks: configured in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/python -m mypy

# -n auto: one pytest-xdist worker per core
test: lint  # the fast tier; CI also runs test-slow
	$(BIN)/python -m pytest -q -rs -n auto --dist worksteal -m "not slow"

test-slow: $(STAMP)  # renders, bpy installs, end-to-end evaluations
	$(BIN)/python -m pytest -q -rs -n auto --dist worksteal -m slow

addon: $(STAMP)
	$(BIN)/python blender_addon/build.py --out dist/blender

clean:
	rm -rf $(VENV) out build dist *.egg-info

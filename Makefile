# Two entry points: `make demo` and `make test`. Both create .venv when missing and
# reuse it afterwards; the install step reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
DEMO_DIR ?= demo-run
DEMO_N ?= 20000

.PHONY: demo test lint bench clean venv system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Debian packages the tests use: Chromium opens the HTML report, dataset-fashion-mnist
# holds the Fashion-MNIST IDX files. Installed only when missing and we are root (CI);
# otherwise those tests fail and say what to install.
SYSTEM_PACKAGES := chromium chromium-driver dataset-fashion-mnist
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

system-deps:
	@if { [ ! -x /usr/bin/chromium ] || [ ! -d $(FASHION_MNIST_DIR) ]; } && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check calosim tests validation

demo: $(STAMP)
	$(BIN)/python -m calosim.demo --out $(DEMO_DIR) --n $(DEMO_N)

bench: $(STAMP)
	$(BIN)/calosim bench --simulator mc --n 100000

clean:
	rm -rf $(DEMO_DIR) .pytest_cache

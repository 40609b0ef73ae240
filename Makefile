# Two commands do all the set-up on a fresh machine (see README.md):
#   make book   build the course into _build/html and open it
#   make test   run every test: engine unit tests and every chapter under strict nbval, then
#               build the book and check it in headless Chromium (tests/browser)
# Both take the course's public repository: `make book REPO_URL=https://github.com/you/cblab`
# gives every chapter Binder and Colab launch buttons for it; without one, no launch buttons.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Widget manager, require.js and MathJax, fetched from the npm registry (see .ci/vendor_js.py).
VENDOR := _vendor/NOTICE.txt

# The model's matrices are small: BLAS threads cost more than they give, and on a busy two-core
# machine they oversubscribe it (seen here: a chapter 150x slower). Tests and chapter runs use one.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

# The course's public repository (a GitHub URL) and branch: the launch buttons of the built book
# (build-book: .ci/book_config.py writes $(BOOK_CONFIG), _config.yml plus the repository, and
# builds from it) and the chapters' hidden Colab install cells (colab-cell). Empty: neither.
REPO_URL    ?=
REPO_BRANCH ?= main
BOOK_CONFIG := _build/_config.repo.yml
REPO_ENV     = REPO_URL='$(strip $(REPO_URL))' REPO_BRANCH='$(strip $(REPO_BRANCH))'

.PHONY: book test unit browser build-book execute colab-cell clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

$(VENDOR): .ci/vendor_js.py
	$(PYTHON) .ci/vendor_js.py _vendor

book: build-book
	@echo "The course is built: open $(CURDIR)/_build/html/index.html"
	@$(BIN)/python -c "import webbrowser, sys; webbrowser.open('file://$(CURDIR)/_build/html/index.html') or sys.exit(0)" || true

build-book: $(STAMP) $(VENDOR)
	$(REPO_ENV) $(BIN)/python .ci/book_config.py $(BOOK_CONFIG)
	$(BIN)/jupyter-book build . -W -n --keep-going $(if $(strip $(REPO_URL)),--config $(BOOK_CONFIG))

test: $(STAMP)
	$(MAKE) unit
	$(MAKE) build-book
	$(MAKE) browser

# The import contracts of pyproject.toml (layers, no cycles), then engine unit tests and every
# chapter under strict nbval (tests/browser is not collected).
unit: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m pytest

# The built book in headless Chromium: skipped with a message when Chromium or Playwright is
# missing, except with CI=true. Screenshots land in _build/screenshots/.
browser: $(STAMP)
	$(BIN)/python -m pytest --browser tests/browser

# Re-execute chapters after changing code under them (NB="book/03_prefill_decode_mix.ipynb" for one).
execute: $(STAMP)
	$(BIN)/python .ci/execute_notebooks.py $(NB)

# Insert or update each chapter's hidden Colab install cell, installing from REPO_URL (at
# REPO_BRANCH); without REPO_URL it removes that cell. Then `make execute`.
colab-cell: $(STAMP)
	$(REPO_ENV) $(BIN)/python .ci/add_colab_cell.py $(NB)

clean:
	rm -rf _build _vendor

# Two commands do all the set-up on a fresh machine (see README.md):
#   make book   build the course into _build/html and open it
#   make test   run every test: engine unit tests, every chapter under strict nbval, book build
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test unit notebooks build-book execute clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

book: build-book
	@echo "The course is built: open $(CURDIR)/_build/html/index.html"
	@$(BIN)/python -c "import webbrowser, sys; webbrowser.open('file://$(CURDIR)/_build/html/index.html') or sys.exit(0)" || true

build-book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) build-book

# Re-execute chapters after changing code under them (NB="book/03_prefill_decode_mix.ipynb" for one).
execute: $(STAMP)
	$(BIN)/python .ci/execute_notebooks.py $(NB)

clean:
	rm -rf _build

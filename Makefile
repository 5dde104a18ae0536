# Two commands: `make lab` opens the course, `make test` runs every test.
# Both create (or update) the project's own environment in .venv on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test unit notebooks browser student gpu-check clean-env

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test,lab]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Unit tests, every notebook through nbval, graded chapters and the browser check, all in quick
# mode. Two workers, one file each at a time (a notebook's cells share one kernel); one thread
# per process so the workers do not fight over the cores.
test: $(STAMP)
	COURSE_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests notebooks --ignore=tests/fixtures \
		-n 2 --dist loadfile --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
		-p no:cacheprovider --durations=15

unit: $(STAMP)
	COURSE_QUICK=1 $(BIN)/python -m pytest tests -m "not browser and not slow"

notebooks: $(STAMP)
	COURSE_QUICK=1 $(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600

# On a machine with one CUDA GPU (about 6 minutes): training with AMP + resume + fp16 evaluation,
# eager and CUDA-graph latency, the guideline experiments and four chapters; writes results/gpu_check.json.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out results/gpu_check.json

student: $(STAMP)
	$(BIN)/python -m course.assignments build --out student/

clean-env:
	rm -rf $(VENV)

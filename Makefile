# Set-up is part of every target: a fresh clone needs nothing but Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# torch first, with the exact pin: a looser requirement pulls several GB of CUDA wheels.
TORCH_PIN := torch==2.13.0
EXTRAS ?= dev,samples,cluster,hpo

.PHONY: setup test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(INSTALLED)

setup: $(INSTALLED)

test: setup
	$(PY) -m pytest

# The whole curriculum on the embedded synthetic market, then the test-split table: the hierarchy
# against the flat PPO, equal weight, equal-weight buy-and-hold and random allocation.
demo: setup
	$(PY) -m learners.train phase=all budget=demo evaluation.flat_ppo=true experiment=demo

bench: setup
	$(PY) -m pip install --quiet -e ".[$(EXTRAS),bench]"
	$(PY) -m envs.bench
	$(PY) -m features.bench
	$(PY) -m risk.bench
	$(PY) -m learners.bench
	$(PY) -m learners.experiment.bench
	$(PY) -m hierarchy.bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# ---------------------------------------------------------------- the paper
# Debian's LaTeX packages the paper needs (booktabs, natbib, hyperref, times; latexmk drives it).
LATEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
# The sweep behind the paper: every ablation x seeds at this budget (a small one: PAPER_BUDGET=smoke),
# each run in <sweep>/<ablation>-seed<s>/, launched by hydra's LAUNCHER (configs/hydra/launcher/):
#   local        PAPER_JOBS runs at a time on this machine (joblib; one torch thread each)
#   slurm        a SLURM job array (submitit), e.g. LAUNCHER_ARGS="hydra.launcher.partition=cpu"
#   ray          Ray tasks, e.g. LAUNCHER_ARGS="hydra.launcher.ray.init.address=auto"
#   basic        one run after the other; slurm_local: the SLURM launcher's code path on this machine
# (README, "Running on a cluster"). A failed run does not stop the others: the sweep folder records
# every job's status (python -m learners.run.sweep <sweep>) and the report names the missing runs.
# Then the sweep's compact archive in paper/results/ (committed: `make paper` builds from it) and the
# report on the archive (REPORT_ARGS: hydra keys of eval.report, e.g. resamples=1000).
PAPER_BUDGET ?= paper
PAPER_JOBS ?= 2
LAUNCHER ?= local
LAUNCHER_ARGS ?=
# seeds of the primary row (full) and the flat PPO; the other ablations run PAPER_ABLATION_SEEDS, each
# compared with full on those seeds x the test universes (eval.power)
PAPER_SEEDS := 0 1 2 3 4
PAPER_ABLATION_SEEDS := 0 1 2
# the sequence specialists train slower (phase 1 at 256 envs, one thread: tactical 0.54x, lstm_cnn 0.20x,
# transformer 0.08x the MLP's env-steps/s): at the paper budget a transformer run spends ~35 min in phase 1
PAPER_ABLATIONS := no_meta cql no_sentiment no_regime no_risk_penalty consensus mappo risk_agent multi_timeframe \
	transformer_specialists lstm_cnn_specialists tactical_specialists
PAPER_SWEEP := runs/paper/sweep_$(shell date +%Y-%m-%d_%H-%M-%S)
PAPER_RESULTS := paper/results
REPORT_ARGS ?=
# hyperparameter searches (folders of learners.train -m hpo=...) whose trials the report counts in the
# deflated Sharpe ratio: kept in the archive
PAPER_SEARCHES ?=
# the primary ablation's runs (full) also retrain on the last WALK_FORWARD_FOLDS walk-forward folds (windows
# from evaluation.walk_forward), each at WALK_FORWARD_SCALE of the budget's env steps: the walk-forward table
# reads the primary row only
WALK_FORWARD_FOLDS ?= 4
WALK_FORWARD_SCALE ?= 0.25
WALK_FORWARD = 'evaluation.walk_forward.enabled="$${eq:$${ablation.name},full}"' \
	evaluation.walk_forward.folds=$(WALK_FORWARD_FOLDS) evaluation.walk_forward.steps_scale=$(WALK_FORWARD_SCALE)
comma := ,
empty :=
space := $(empty) $(empty)
listed = $(subst $(space),$(comma),$(strip $(1)))
# one hydra multirun of the sweep into folder $(1) (the sweep's parameters follow)
SWEEP = $(PY) -m learners.train -m phase=all budget=$(PAPER_BUDGET) experiment=paper \
	hydra/launcher=$(if $(filter ray,$(LAUNCHER)),ray_cluster,$(LAUNCHER)) \
	$(if $(filter local,$(LAUNCHER)),hydra.launcher.n_jobs=$(PAPER_JOBS)) $(LAUNCHER_ARGS) \
	hydra.sweep.dir=$(1) 'hydra.sweep.subdir=$${ablation.name}-seed$${seed}'
# make paper-check: these seeds of full again, compared with the archive (0: identical, as on the machine
# that made it)
PAPER_CHECK_SEEDS ?= 0 1
PAPER_CHECK_TOLERANCE ?= 0

.PHONY: paper paper-experiments paper-check

# the primary row and the flat PPO in one multirun, the ablations in a second (fewer seeds); a multirun
# that ends with failed jobs does not stop the target: the report names what is missing
paper-experiments: setup
	-$(call SWEEP,$(PAPER_SWEEP)) ablation=full,flat_ppo seed=$(call listed,$(PAPER_SEEDS)) $(WALK_FORWARD)
	-$(call SWEEP,$(PAPER_SWEEP)) ablation=$(call listed,$(PAPER_ABLATIONS)) seed=$(call listed,$(PAPER_ABLATION_SEEDS))
	$(PY) -m learners.run.sweep $(PAPER_SWEEP)
	$(PY) -m eval.archive $(PAPER_SWEEP) $(PAPER_RESULTS) $(if $(strip $(PAPER_SEARCHES)),--searches $(PAPER_SEARCHES))
	$(PY) -m eval.report runs=$(PAPER_RESULTS) $(REPORT_ARGS)

paper-check: setup
	$(eval CHECK := runs/paper-check/$(shell date +%Y-%m-%d_%H-%M-%S))
	$(call SWEEP,$(CHECK)) ablation=full seed=$(call listed,$(PAPER_CHECK_SEEDS)) $(WALK_FORWARD)
	$(PY) -m eval.archive --compare $(PAPER_RESULTS) $(CHECK) --tolerance $(PAPER_CHECK_TOLERANCE)

paper: setup
	@test -f paper/tables/macros.tex || $(PY) -m eval.report runs=$(PAPER_RESULTS) $(REPORT_ARGS)
	@command -v pdflatex > /dev/null && command -v latexmk > /dev/null || \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $(LATEX_PACKAGES); }
	cd paper && latexmk -pdf -interaction=nonstopmode -halt-on-error main.tex && latexmk -c -silent main.tex
	@echo "wrote paper/main.pdf"

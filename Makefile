# species-classifier: a camera-trap species classifier served on Kubernetes.
# `make help` lists every target. Contracts (names, ports, commands) live in ARCHITECTURE.md.

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3

## Python environments
# .venv: model tooling, the TF Serving stand-in and the tests (TensorFlow CPU runtime included).
# .venv-gateway: exactly what the gateway image installs; no TensorFlow runtime.
# .venv-s3: the S3-compatible test server (moto's server mode) for the bulk tests; botocore's pins conflict
# with the kubernetes client's, so it cannot share .venv.
VENV := $(ROOT)/.venv
GW_VENV := $(ROOT)/.venv-gateway
S3_VENV := $(ROOT)/.venv-s3
VENV_PY := $(VENV)/bin/python
GW_PY := $(GW_VENV)/bin/python
S3_PY := $(S3_VENV)/bin/python
# tensorflow-serving-api declares a dependency on the full `tensorflow` package; both environments install it
# with --no-deps and pin its real dependencies (grpcio, protobuf) themselves.
TF_SERVING_API_VERSION := 2.21.0
TF_VERSION := 2.21.0
# MegaDetector's batch-output validator, for the bulk tests; --no-deps (see tests/requirements.txt).
MEGADETECTOR_UTILS_VERSION := 10.0.28
# botocore service models the gateway image keeps (S3 and the credential providers' services); the rest are
# deleted, as in gateway/Dockerfile (a test keeps the two lists equal).
BOTOCORE_SERVICES := s3 sts sso sso-oidc

## Pinned tools, installed into bin/ (git-ignored)
LOCALBIN := $(ROOT)/bin
HELM_VERSION := v4.3.1
KIND_VERSION := v0.33.0
KUSTOMIZE_VERSION := v5.8.0
# Prometheus 3.x is published on the Go module proxy as v0.3XX.Y: v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_VERSION := v0.316.0
PROMETHEUS_RELEASE := $(shell echo $(PROMETHEUS_VERSION) | awk -F. '{ printf "%d.%d.%s", substr($$2, 1, 1), substr($$2, 2), $$3 }')
HELM := $(LOCALBIN)/helm
KIND := $(LOCALBIN)/kind
KUSTOMIZE := $(LOCALBIN)/kustomize
PROMETHEUS := $(LOCALBIN)/prometheus
PROMTOOL := $(LOCALBIN)/promtool
export PATH := $(LOCALBIN):$(PATH)

## The release version: the chart's appVersion is its one source. Image tags and the app.kubernetes.io/version
## label follow it (chart and k8s/components/labels); the other copies (Chart version, pyproject.toml,
## gateway/__init__.py, the kustomize label) are checked against it by tests/packaging/test_version.py.
## Exported to the scripts; run by hand, they read it with `make -s print-version`.
export APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' $(ROOT)/charts/species-classifier/Chart.yaml)

## Build outputs (git-ignored)
BUILD := $(ROOT)/build
MODEL_VERSION := 1
MODEL_DIR := $(BUILD)/models/species_model/$(MODEL_VERSION)
MODEL_STAMP := $(MODEL_DIR)/saved_model.pb
# The demo model is deterministic in its inputs, so a copy is kept outside the clone, keyed by them (model/*.py,
# its requirements, TensorFlow's and Python's versions): a fresh clone copies it instead of training again.
# SPECIES_CACHE_DIR moves the cache, as it does for hack/lib.sh.
CACHE_DIR := $(or $(SPECIES_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/species-classifier)
PY_TAG := $(shell $(PYTHON) -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
MODEL_KEY := $(shell cat $(sort $(wildcard $(ROOT)/model/*.py)) $(ROOT)/model/requirements.txt | sha256sum | cut -c1-16)-tf$(TF_VERSION)-$(PY_TAG)
MODEL_CACHE := $(CACHE_DIR)/model/$(MODEL_KEY)
MODEL_OUTPUTS := demo models golden
# Pinned Go tools and the control plane's binaries, by version (linked into bin/).
TOOLS_CACHE := $(CACHE_DIR)/bin

# The level-4 control plane (sim-bins, sim-up, sim-down, listed last by `make help`) and SIM_TEST_DEPS, which
# `make test` needs built; included here, after the variables it uses and before the rules that use it.
include hack/sim.mk

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

.PHONY: print-version
print-version: ## Print the release version (the chart's appVersion), for scripts: `make -s print-version`.
	@echo $(APP_VERSION)

##@ Development

.PHONY: venv
venv: $(VENV)/.installed $(GW_VENV)/.installed $(S3_VENV)/.installed ## Create the Python environments (.venv, .venv-gateway, .venv-s3) with pinned packages.

# Each environment is built once per key in the cache outside the clone (CACHE_DIR/venv/NAME-KEY) and the clone
# links to it: a new clone of unchanged pins installs nothing (a cold .venv is minutes of downloads). The key
# covers what the recipe reads: the requirement files, the pins above, the vendoring script, Python's version.
# A virtualenv cannot move once made, so it is built where it stays; `.complete` marks a whole one, and an
# interrupted build is made again from scratch.
VENV_INPUTS := model/requirements.txt gateway/requirements.txt tests/requirements.txt serving/standin/requirements.txt
GW_VENV_INPUTS := gateway/requirements.txt gateway/requirements-bulk.txt hack/vendor_tf_protos.py
S3_VENV_INPUTS := tests/s3-requirements.txt
venv-key = $(shell { echo '$(2)'; cat $(1); } | sha256sum | cut -c1-16)-$(PY_TAG)
VENV_CACHE := $(CACHE_DIR)/venv/main-$(call venv-key,$(VENV_INPUTS),$(TF_SERVING_API_VERSION) $(MEGADETECTOR_UTILS_VERSION))
GW_VENV_CACHE := $(CACHE_DIR)/venv/gateway-$(call venv-key,$(GW_VENV_INPUTS),$(TF_SERVING_API_VERSION) $(TF_VERSION) $(BOTOCORE_SERVICES))
S3_VENV_CACHE := $(CACHE_DIR)/venv/s3-$(call venv-key,$(S3_VENV_INPUTS),)
PIP_INSTALL = -m pip install --quiet --disable-pip-version-check

# link-venv LINK,CACHED: the clone's LINK points at the whole environment CACHED (a directory made before this
# scheme is replaced).
define link-venv
rm -rf $(1) && ln -s $(2) $(1)
@echo "venv: $(1) -> $(2)"
endef

$(VENV)/.installed: $(VENV_INPUTS)
	if [ ! -f $(VENV_CACHE)/.complete ]; then \
		rm -rf $(VENV_CACHE) && $(PYTHON) -m venv $(VENV_CACHE) && \
		$(VENV_CACHE)/bin/python $(PIP_INSTALL) \
			-r serving/standin/requirements.txt -r gateway/requirements.txt -r tests/requirements.txt && \
		$(VENV_CACHE)/bin/python $(PIP_INSTALL) --no-deps \
			tensorflow-serving-api==$(TF_SERVING_API_VERSION) megadetector-utils==$(MEGADETECTOR_UTILS_VERSION) && \
		touch $(VENV_CACHE)/.complete; \
	fi
	$(call link-venv,$(VENV),$(VENV_CACHE))
	touch $@

$(GW_VENV)/.installed: $(GW_VENV_INPUTS)
	if [ ! -f $(GW_VENV_CACHE)/.complete ]; then \
		rm -rf $(GW_VENV_CACHE) $(GW_VENV_CACHE).wheels && $(PYTHON) -m venv $(GW_VENV_CACHE) && \
		gw=$(GW_VENV_CACHE)/bin/python && \
		$$gw $(PIP_INSTALL) -r gateway/requirements.txt -r gateway/requirements-bulk.txt && \
		$$gw $(PIP_INSTALL) --no-deps tensorflow-serving-api==$(TF_SERVING_API_VERSION) && \
		$$gw -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
			--dest $(GW_VENV_CACHE).wheels tensorflow-cpu==$(TF_VERSION) && \
		$$gw hack/vendor_tf_protos.py --wheel $(GW_VENV_CACHE).wheels/tensorflow_cpu-$(TF_VERSION)-*.whl \
			--dest $$($$gw -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
		rm -rf $(GW_VENV_CACHE).wheels && \
		: "As in gateway/Dockerfile: numpy's own test suite is never imported by the gateway." && \
		find $(GW_VENV_CACHE)/lib -path '*/numpy/*' -type d -name tests -prune -exec rm -rf {} + && \
		: "As in gateway/Dockerfile: botocore's models of the ~440 AWS services the bulk Job never calls." && \
		find $$($$gw -c 'import botocore, os; print(os.path.dirname(botocore.__file__))')/data -mindepth 1 \
			-maxdepth 1 -type d $(foreach service,$(BOTOCORE_SERVICES),! -name $(service)) -exec rm -rf {} + && \
		touch $(GW_VENV_CACHE)/.complete; \
	fi
	$(call link-venv,$(GW_VENV),$(GW_VENV_CACHE))
	touch $@

$(S3_VENV)/.installed: $(S3_VENV_INPUTS)
	if [ ! -f $(S3_VENV_CACHE)/.complete ]; then \
		rm -rf $(S3_VENV_CACHE) && $(PYTHON) -m venv $(S3_VENV_CACHE) && \
		$(S3_VENV_CACHE)/bin/python $(PIP_INSTALL) -r tests/s3-requirements.txt && \
		touch $(S3_VENV_CACHE)/.complete; \
	fi
	$(call link-venv,$(S3_VENV),$(S3_VENV_CACHE))
	touch $@

.PHONY: model
model: $(MODEL_STAMP) $(MODEL_CACHE)/.complete ## Build the demo model and golden images into build/ (deterministic, a few minutes; cached by its inputs).

$(MODEL_STAMP): $(VENV)/.installed $(wildcard model/*.py)
	if [ -f $(MODEL_CACHE)/.complete ]; then \
		echo "model: the demo model of these inputs, from $(MODEL_CACHE)"; \
		mkdir -p $(BUILD) && rm -rf $(addprefix $(BUILD)/,$(MODEL_OUTPUTS)); \
		cp -a $(addprefix $(MODEL_CACHE)/,$(MODEL_OUTPUTS)) $(BUILD)/ && touch $@; \
	else \
		$(VENV_PY) -m model.demo --out $(BUILD); \
	fi

# Order-only: stored once per key, from the build that made it.
$(MODEL_CACHE)/.complete: | $(MODEL_STAMP)
	rm -rf $(MODEL_CACHE).tmp && mkdir -p $(MODEL_CACHE).tmp
	cp -a $(addprefix $(BUILD)/,$(MODEL_OUTPUTS)) $(MODEL_CACHE).tmp/
	touch $(MODEL_CACHE).tmp/.complete
	rm -rf $(MODEL_CACHE) && mv $(MODEL_CACHE).tmp $(MODEL_CACHE)

.PHONY: local
local: venv model ## Run the stand-in on 127.0.0.1:8500 and the gateway on 127.0.0.1:9696; Ctrl-C stops both.
	VENV=$(VENV) GW_VENV=$(GW_VENV) MODEL_BASE_PATH=$(BUILD)/models/species_model hack/local.sh

.PHONY: lint
lint: $(VENV)/.installed ## Run ruff and mypy; go vet on the project's Go code.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd hack/offline/capwrap && go vet ./...

.PHONY: test
# Where level 5 writes the cluster's state at its first failures; printed again at the very end of a failed run,
# the part of a CI log read first.
E2E_SNAPSHOT := build/e2e/cluster-at-failure.txt
# Level 5 (tests/e2e) needs a Docker engine: `docker-up --if-possible` starts one where it can (root on
# Debian) and otherwise says why; the e2e fixtures then create the kind cluster and remove it at the end.
# hack/test.sh: one pytest, level 5 last with its cluster made in the background meanwhile (TEST_PARALLEL=1 runs
# level 5 in a second pytest alongside levels 1-4, for machines with more than 2 cores).
test: venv model tools browser $(KIND) $(SIM_TEST_DEPS) lint ## Run every test this machine can run (levels 1-5); the rest are reported as skipped, with the reason.
	cd hack/offline/capwrap && go test ./...
	hack/docker-up.sh --if-possible
	@rm -f $(E2E_SNAPSHOT); df -h . 2>/dev/null | sed 's/^/disk before the tests: /'
	@VENV_PY=$(VENV_PY) hack/test.sh || { status=$$?; df -h . 2>/dev/null | sed 's/^/disk after the tests: /'; \
	  if [ -f $(E2E_SNAPSHOT) ]; then echo "--- $(E2E_SNAPSHOT) (the kind cluster at level 5's first failures) ---"; \
	  head -c 15000 $(E2E_SNAPSHOT); fi; exit $$status; }

# The demo page's browser test drives Debian's chromium through chromium-driver: no browser download.
BROWSER_PACKAGES := chromium chromium-driver fonts-dejavu-core

.PHONY: browser
browser: ## Install Debian's chromium and chromium-driver for the demo page's browser test (apt-get, as root).
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(BROWSER_PACKAGES) with apt-get" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(BROWSER_PACKAGES); \
	else \
		echo "chromium or chromedriver missing and not root with apt-get: the browser test will be skipped" >&2; \
	fi

.PHONY: bench
bench: venv model ## Benchmark the gateway and the bulk path against the stand-in; prints tables, writes build/bench/*.json.
	$(VENV_PY) -m tests.bench.gateway --gateway-python $(GW_PY) --model-base-path $(BUILD)/models/species_model \
		--out $(BUILD)/bench
	$(VENV_PY) -m tests.bench.bulk --gateway-python $(GW_PY) --model-base-path $(BUILD)/models/species_model \
		--out $(BUILD)/bench

.PHONY: clean
clean: ## Remove build outputs and the links to the virtualenvs (bin/ and the caches under ~/.cache/species-classifier stay).
	rm -rf $(BUILD) $(VENV) $(GW_VENV) $(S3_VENV)

##@ Tools

.PHONY: tools
tools: $(HELM) $(KUSTOMIZE) $(PROMETHEUS) $(PROMTOOL) ## Install pinned CLI tools (helm, kustomize, prometheus, promtool) into bin/.

$(HELM): $(LOCALBIN)/helm-$(HELM_VERSION)
	ln -sf helm-$(HELM_VERSION) $@
$(LOCALBIN)/helm-$(HELM_VERSION):
	$(call go-install-tool,helm,helm.sh/helm/v4/cmd/helm,$(HELM_VERSION))

$(KUSTOMIZE): $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
	ln -sf kustomize-$(KUSTOMIZE_VERSION) $@
$(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION):
	$(call go-install-tool,kustomize,sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

# The real Prometheus server and promtool, for the alert-rule and dashboard tests. `remove_all_sd` leaves out
# every service discovery but file and HTTP (the tests use static targets), and the web UI's assets are not
# embedded (no `builtinassets`): the HTTP API is whole. -X stamps the release into `--version`.
PROMETHEUS_FLAGS := -tags remove_all_sd -trimpath \
	-ldflags "-s -w -X github.com/prometheus/common/version.Version=$(PROMETHEUS_RELEASE)"

$(PROMETHEUS): $(LOCALBIN)/prometheus-$(PROMETHEUS_VERSION)
	ln -sf prometheus-$(PROMETHEUS_VERSION) $@
$(LOCALBIN)/prometheus-$(PROMETHEUS_VERSION):
	$(call go-install-tool,prometheus,github.com/prometheus/prometheus/cmd/prometheus,$(PROMETHEUS_VERSION),$(PROMETHEUS_FLAGS))

$(PROMTOOL): $(LOCALBIN)/promtool-$(PROMETHEUS_VERSION)
	ln -sf promtool-$(PROMETHEUS_VERSION) $@
$(LOCALBIN)/promtool-$(PROMETHEUS_VERSION):
	$(call go-install-tool,promtool,github.com/prometheus/prometheus/cmd/promtool,$(PROMETHEUS_VERSION),$(PROMETHEUS_FLAGS))

$(KIND): $(LOCALBIN)/kind-$(KIND_VERSION)
	ln -sf kind-$(KIND_VERSION) $@
$(LOCALBIN)/kind-$(KIND_VERSION):
	$(call go-install-tool,kind,sigs.k8s.io/kind,$(KIND_VERSION))

# go-install-tool builds $(2)@$(3) with `go install` (extra build flags in $(4)) and links it as bin/$(1)-$(3),
# so a version bump in this file is a rebuild and two versions never mix. The binary itself is kept outside the
# clone, in TOOLS_CACHE under its version and a hash of the flags: a fresh clone on a warm machine only links
# (relinking helm, kustomize, prometheus, promtool and kind took 35 s here).
define go-install-tool
@command -v go >/dev/null || { echo "go is required to build $(1) $(3): install Go 1.22+ and retry" >&2; exit 1; }
mkdir -p $(LOCALBIN) $(TOOLS_CACHE)
cached=$(TOOLS_CACHE)/$(1)-$(3)-$$(echo '$(4)' | sha256sum | cut -c1-8) && if [ ! -x $$cached ]; then \
	tmp=$$(mktemp -d) && GOBIN=$$tmp CGO_ENABLED=0 nice go install $(4) $(2)@$(3) && mv $$tmp/$(1) $$cached && \
	rm -rf $$tmp; fi && ln -sf $$cached $(LOCALBIN)/$(1)-$(3)
endef

##@ Docker engine

.PHONY: docker-up
docker-up: ## Start a Docker engine when none answers (root on Debian: installs docker.io; data under ~/.cache).
	hack/docker-up.sh

.PHONY: docker-down
docker-down: ## Stop the Docker engine that docker-up started, and only that one.
	hack/docker-down.sh

##@ Kind (local cluster)

.PHONY: kind-up
kind-up: venv model $(KIND) ## Create the kind cluster, build and load images, apply k8s/overlays/kind, check golden images.
	hack/kind-up.sh

.PHONY: kind-addons
kind-addons: $(KIND) $(HELM) ## Add MetalLB and metrics-server to the kind cluster (the EKS rehearsal's needs; or KIND_ADDONS=1 make kind-up).
	hack/kind-addons.sh

.PHONY: kind-down
kind-down: $(KIND) ## Delete the kind cluster (idempotent).
	hack/kind-down.sh

##@ EKS (AWS)

.PHONY: eks-up
eks-up: venv model $(HELM) ## Create or reuse the EKS cluster, push images to ECR, install the chart, smoke-test the NLB.
	hack/eks-up.sh

.PHONY: eks-down
eks-down: $(HELM) ## Remove the chart, load balancer controller, ECR repositories and the EKS cluster.
	hack/eks-down.sh

# Control plane for test level 4: a real kube-apiserver, kube-controller-manager, kube-scheduler and etcd, with
# kwok simulating nodes and pods (no containers run). Included by the Makefile.
# The binaries are built from the Go module proxy by hack/sim/build-bins.sh into bin/, named with their version.

KUBE_VERSION := v1.37.2
# etcd v3.7.0: the version Kubernetes v1.37.2 pins its etcd client to (hack/sim/go.mod).
ETCD_VERSION := v3.7.0
KWOK_VERSION := v0.8.0
# go build parallelism for the control plane (-p): 1 on a shared development machine, 2 in CI (CI=true),
# where the build has the machine to itself.
SIM_BUILD_JOBS ?= $(if $(CI),2,1)

SIM_DIR := $(BUILD)/sim
SIM_STAMP := $(LOCALBIN)/.sim-bins-$(KUBE_VERSION)-$(ETCD_VERSION)-$(KWOK_VERSION)

# `make test` builds these first, so the level-4 tests run instead of skipping.
SIM_TEST_DEPS := sim-bins

##@ Control plane (test level 4)

.PHONY: sim-bins
sim-bins: $(SIM_STAMP) ## Build the pinned control plane and kwok into bin/ (cached; a no-op when built).

# Built once per key into TOOLS_CACHE (outside the clone) and linked into bin/: relinking them in a fresh clone
# took a minute here. `.complete` marks a whole set.
SIM_INPUTS := hack/sim/go.mod hack/sim/go.sum hack/sim/etcd/main.go hack/sim/build-bins.sh
sim-cache = $(TOOLS_CACHE)/$(1)-$(KUBE_VERSION)-$(shell cat $(SIM_INPUTS) | sha256sum | cut -c1-12)
SIM_CACHE := $(call sim-cache,sim-$(ETCD_VERSION)-$(KWOK_VERSION))
NODE_BINS_CACHE := $(call sim-cache,node)

# link-cached-bins DIR: every binary in DIR linked into bin/ under its own name.
define link-cached-bins
mkdir -p $(LOCALBIN) && for bin in $(1)/*; do ln -sf $$bin $(LOCALBIN)/; done
endef

$(SIM_STAMP): $(SIM_INPUTS)
	[ -f $(SIM_CACHE)/.complete ] || { rm -rf $(SIM_CACHE) && \
		LOCALBIN=$(SIM_CACHE) KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) KWOK_VERSION=$(KWOK_VERSION) \
		SIM_BUILD_JOBS=$(SIM_BUILD_JOBS) hack/sim/build-bins.sh && touch $(SIM_CACHE)/.complete; }
	$(call link-cached-bins,$(SIM_CACHE))
	touch $@

# The offline kind node's kubelet, kubeadm and kube-proxy, from the same module (hack/offline/build-images.sh).
NODE_BINS_STAMP := $(LOCALBIN)/.node-bins-$(KUBE_VERSION)

.PHONY: node-bins
node-bins: $(NODE_BINS_STAMP) ## Build the pinned kubelet, kubeadm and kube-proxy into bin/ (for the offline kind node).

$(NODE_BINS_STAMP): $(SIM_INPUTS)
	[ -f $(NODE_BINS_CACHE)/.complete ] || { rm -rf $(NODE_BINS_CACHE) && \
		LOCALBIN=$(NODE_BINS_CACHE) KUBE_VERSION=$(KUBE_VERSION) SIM_BUILD_JOBS=$(SIM_BUILD_JOBS) \
		hack/sim/build-bins.sh node && touch $(NODE_BINS_CACHE)/.complete; }
	$(call link-cached-bins,$(NODE_BINS_CACHE))
	touch $@

# hack/sim/cluster.sh falls back to the versions above when run without these (as the pytest fixture does).
SIM_ENV = SIM_DIR=$(SIM_DIR) SIM_BIN=$(LOCALBIN) KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) \
	KWOK_VERSION=$(KWOK_VERSION)

.PHONY: sim-up
sim-up: sim-bins ## Start the simulated control plane on 127.0.0.1; kubeconfig in build/sim/kubeconfig.
	$(SIM_ENV) hack/sim/cluster.sh up

.PHONY: sim-down
sim-down: ## Stop the simulated control plane and remove its state (idempotent).
	$(SIM_ENV) hack/sim/cluster.sh down

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

$(SIM_STAMP): hack/sim/go.mod hack/sim/go.sum hack/sim/etcd/main.go hack/sim/build-bins.sh
	LOCALBIN=$(LOCALBIN) KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) KWOK_VERSION=$(KWOK_VERSION) \
		SIM_BUILD_JOBS=$(SIM_BUILD_JOBS) hack/sim/build-bins.sh
	touch $@

# The offline kind node's kubelet, kubeadm and kube-proxy, from the same module (hack/offline/build-images.sh).
NODE_BINS_STAMP := $(LOCALBIN)/.node-bins-$(KUBE_VERSION)

.PHONY: node-bins
node-bins: $(NODE_BINS_STAMP) ## Build the pinned kubelet, kubeadm and kube-proxy into bin/ (for the offline kind node).

$(NODE_BINS_STAMP): hack/sim/go.mod hack/sim/go.sum hack/sim/build-bins.sh
	LOCALBIN=$(LOCALBIN) KUBE_VERSION=$(KUBE_VERSION) SIM_BUILD_JOBS=$(SIM_BUILD_JOBS) hack/sim/build-bins.sh node
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

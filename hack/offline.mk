# Pins of what `make kind-up` builds on machines that cannot pull the pinned images (no registry reachable):
# the kind node image, the Python base and the images inside the node. Kubernetes and etcd are pinned in
# hack/sim.mk (the same binaries as the level-4 control plane); kind in the Makefile. hack/offline/README.md
# says what each is for and how to bump it. A change here is a new image key, so the next build starts over.

# Debian release of every locally built image (bookworm: Python 3.11, as the project's images).
DEBIAN_SUITE := bookworm
DEBIAN_MIRROR := http://deb.debian.org/debian
CONTAINERD_VERSION := v2.3.4
RUNC_VERSION := v1.4.3
CRICTL_VERSION := v1.36.0
CNI_PLUGINS_VERSION := v1.9.1
# The CNI: pod routes between nodes and NetworkPolicy enforcement (iptables + ipsets, which this kernel has).
# v2.1.0 is the only version the Go module proxy serves; keep it to test clusters.
KUBE_ROUTER_VERSION := v2.1.0
# Must equal the CoreDNS version kubeadm $(KUBE_VERSION) deploys (its constants.CoreDNSVersion);
# build-images.sh checks it against `kubeadm config images list`.
COREDNS_VERSION := v1.14.6

# The EKS rehearsal's add-ons on kind (hack/kind-addons.sh): a LoadBalancer implementation and the metrics
# API the HPAs read. Their charts come from the same Go modules (charts/ in each), their images are pulled
# where possible, else built here from those modules.
# v0.15.2, not v0.16.2: the proxy does not serve the frr-k8s release v0.16.2 needs (hack/offline/metallb/go.mod).
METALLB_VERSION := v0.15.2
METRICS_SERVER_VERSION := v0.9.0

"""End-to-end tests (level 5) against the kind cluster `make kind-up` makes."""

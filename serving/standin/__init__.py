"""A local stand-in for TF Serving's gRPC API, for development and tests only.

Run it with `python -m serving.standin --model-base-path build/models/species_model`. Every Kubernetes
deployment runs the real TF Serving image (serving/Dockerfile) instead; see `serving.standin.server`.
"""

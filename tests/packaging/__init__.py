"""Packaging tests (level 3): real helm and kustomize renders, strict schemas, cross-object checks."""

"""The preprocessing gateway: HTTP in, TF Serving gRPC out. Free of the TensorFlow runtime."""

# The chart's appVersion; shown in /docs and the startup log line.
__version__ = "0.1.0"

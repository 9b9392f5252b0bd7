"""The preprocessing gateway: HTTP in, TF Serving gRPC out. Free of the TensorFlow runtime."""

"""TF Serving for the species model: the image's configs live next to this package (serving/Dockerfile,
models.config, batching.config, monitoring.config, entrypoint.sh); `serving.standin` is the local stand-in."""

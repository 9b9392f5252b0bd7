"""The Keras model: data preparation, training, export to TF Serving, and the demo model."""

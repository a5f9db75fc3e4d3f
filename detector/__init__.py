"""lstm-detector: streaming anomaly detection with per-stream LSTM autoencoder state."""

__version__ = "0.1.0"

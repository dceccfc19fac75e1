"""rift: Robust Informative Fine-Tuning of pre-trained encoders, and honest robustness evaluation."""

__version__ = "0.1.0"

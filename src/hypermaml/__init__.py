"""hypermaml: few-shot learning where a hypernetwork, not gradient descent, adapts the model."""

__version__ = "0.1.0"

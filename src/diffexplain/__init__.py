"""diffexplain: explain diffusion image models with measured trust."""

__version__ = "0.1.0"

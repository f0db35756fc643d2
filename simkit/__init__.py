"""simkit: Monte Carlo simulation and stress testing of a put-selling strategy document."""

__version__ = "0.1.0"

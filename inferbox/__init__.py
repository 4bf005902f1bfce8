"""inferbox: a conformance and chaos suite that also deploys the Inference-in-a-Box platform."""

__version__ = "0.1.0"

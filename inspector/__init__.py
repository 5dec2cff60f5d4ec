"""Anomalens core: everything that is not a widget.

The package never imports Qt widgets, so the whole inspection flow (reading cases, composing
prompts, asking a VLM, running the offline detector, storing results) runs and is tested
headless. `views/` is the thin Qt layer on top.
"""

__version__ = "0.1.0"

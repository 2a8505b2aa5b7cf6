"""Engines: open_clip (PyTorch) and NudeNet (ONNX Runtime); libraries are imported inside ``load()``."""

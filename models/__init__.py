"""Shipped style models (ONNX) and their model cards; installed as the package ``fastnst.models``."""

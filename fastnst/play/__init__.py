"""The player: torch-free (base install). onnxruntime models, the per-frame pipeline, the
OpenCV player, stylize, bench, video I/O, temporal smoothing, colour and file helpers.
Nothing here imports torch or ``fastnst.learn``."""

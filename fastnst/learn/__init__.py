"""Making models: torch (the ``train`` extra). VGG, losses, nets, data, the training loop,
checkpoints, ONNX export and int8 quantization, the Gatys optimizer and evaluation.
It hands the player nothing but an ONNX file."""

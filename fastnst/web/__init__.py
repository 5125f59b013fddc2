"""The browser page that ``fastnst serve`` serves (package data: HTML, CSS, one JS module, and
onnxruntime-web's WebAssembly build in ``vendor/``). No Python here."""

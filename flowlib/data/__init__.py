"""Data: the 2D toy densities (``toy2d``), scikit-learn's 8x8 digits (``digits``), Fashion-MNIST (``fashion_mnist``)
and the one place that resolves data and checkpoint folders (``paths``). Modules are imported on use, so that
``import flowlib`` does not load scikit-learn."""

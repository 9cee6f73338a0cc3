"""CUDA knowledge and `doctor`."""

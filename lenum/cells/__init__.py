"""Per-cell numba kernels: one forward step and the layer's Jacobian blocks."""

"""Data files of `lenum demo`: a small LSTM and GRU and their inputs (HDF5)."""

"""Hand-written kernels for the recurrences that `lax.scan` runs dispatch-bound: on a CUDA GPU the
persistent Pallas LSTM (`persistent_lstm`), on the CPU the C++ LSTM / GRU / Elman loop reached through XLA's
FFI (`jaxrnn.kernels.cpu_recurrence`, compiled on first use)."""

from jaxrnn.kernels.persistent_lstm import persistent_lstm, persistent_lstm_fits, persistent_lstm_with_status

__all__ = ["persistent_lstm", "persistent_lstm_fits", "persistent_lstm_with_status"]

"""Hand-written GPU kernels (Pallas) for the recurrences that `lax.scan` runs launch-bound."""

from jaxrnn.kernels.persistent_lstm import persistent_lstm, persistent_lstm_fits, persistent_lstm_with_status

__all__ = ["persistent_lstm", "persistent_lstm_fits", "persistent_lstm_with_status"]

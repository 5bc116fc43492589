"""jaxrnn: functional recurrent networks for JAX.

Cells are immutable configs with pure methods over plain-dict parameter pytrees; layers are scans of
cells composed into bidirectional and deep networks. See the README for a tour.
"""

from jaxrnn import interop, masking
from jaxrnn.cells import GRU, LSTM, Cell, LSTMState, SimpleRNN
from jaxrnn.layers import RNN, Bidirectional, Stacked
from jaxrnn.masking import reverse_padded, sequence_mask

__version__ = "0.1.0"

__all__ = [
    "Bidirectional",
    "Cell",
    "GRU",
    "LSTM",
    "LSTMState",
    "RNN",
    "SimpleRNN",
    "Stacked",
    "interop",
    "masking",
    "reverse_padded",
    "sequence_mask",
]

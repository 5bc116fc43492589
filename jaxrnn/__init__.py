"""jaxrnn: functional recurrent networks for JAX.

Cells are immutable configs with pure methods over plain-dict parameter pytrees; layers are scans of
cells composed into bidirectional and deep networks. See the README for a tour.
"""

from jaxrnn import diagnostics, interop, masking, models, parallel, tasks, train
from jaxrnn.cells import (
    GRU,
    LRU,
    LSTM,
    MGU,
    Cell,
    ConvGRU,
    ConvLSTM,
    ConvSimpleRNN,
    LearnableCarry,
    LinearCell,
    LRUState,
    LSTMState,
    MinGRU,
    MinLSTM,
    SimpleRNN,
)
from jaxrnn.initializers import chrono_init
from jaxrnn.layers import RNN, Bidirectional, Conv1D, Hierarchical, RecurrentConv, Stacked
from jaxrnn.masking import reverse_padded, sequence_mask
from jaxrnn.summary import summary

__version__ = "0.1.0"

__all__ = [
    "Bidirectional",
    "Cell",
    "Conv1D",
    "ConvGRU",
    "ConvLSTM",
    "ConvSimpleRNN",
    "GRU",
    "Hierarchical",
    "LRU",
    "LRUState",
    "LSTM",
    "LSTMState",
    "LearnableCarry",
    "LinearCell",
    "MGU",
    "MinGRU",
    "MinLSTM",
    "RNN",
    "RecurrentConv",
    "SimpleRNN",
    "Stacked",
    "chrono_init",
    "diagnostics",
    "interop",
    "masking",
    "models",
    "nnx",
    "parallel",
    "reverse_padded",
    "sequence_mask",
    "summary",
    "tasks",
    "train",
]


def __getattr__(name: str):
    # Flax NNX is imported only when asked for: it adds most of a second to `import jaxrnn`.
    if name == "nnx":
        import importlib

        return importlib.import_module("jaxrnn.nnx")
    raise AttributeError(f"module 'jaxrnn' has no attribute {name!r}")

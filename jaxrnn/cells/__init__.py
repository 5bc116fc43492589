"""Recurrent cells: pure `init` / `initial_carry` / `project` / `recur` / `step` functions."""

from jaxrnn.cells.base import Cell
from jaxrnn.cells.conv import ConvGRU, ConvLSTM, ConvSimpleRNN
from jaxrnn.cells.gru import GRU
from jaxrnn.cells.linear import LinearCell
from jaxrnn.cells.lru import LRU, LRUState
from jaxrnn.cells.lstm import LSTM, LSTMState
from jaxrnn.cells.mgu import MGU
from jaxrnn.cells.minrnn import MinGRU, MinLSTM
from jaxrnn.cells.simple import SimpleRNN
from jaxrnn.cells.wrappers import LearnableCarry

__all__ = [
    "Cell",
    "ConvGRU",
    "ConvLSTM",
    "ConvSimpleRNN",
    "GRU",
    "LRU",
    "LRUState",
    "LSTM",
    "LSTMState",
    "LearnableCarry",
    "LinearCell",
    "MGU",
    "MinGRU",
    "MinLSTM",
    "SimpleRNN",
]

"""Recurrent cells: pure `init` / `initial_carry` / `project` / `recur` / `step` functions."""

from jaxrnn.cells.base import Cell
from jaxrnn.cells.gru import GRU
from jaxrnn.cells.lstm import LSTM, LSTMState
from jaxrnn.cells.simple import SimpleRNN

__all__ = ["Cell", "GRU", "LSTM", "LSTMState", "SimpleRNN"]

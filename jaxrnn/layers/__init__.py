"""Layers composed from scans: `RNN`, `Bidirectional`, `Stacked`."""

from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.rnn import RNN
from jaxrnn.layers.stacked import Stacked

__all__ = ["Bidirectional", "RNN", "Stacked"]

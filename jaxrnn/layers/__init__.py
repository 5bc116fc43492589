"""Layers composed from scans: `RNN`, `Bidirectional`, `Stacked`, `Hierarchical`, and the
recurrent-convolutional `Conv1D` front end and `RecurrentConv`."""

from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.hierarchical import Hierarchical
from jaxrnn.layers.rcnn import Conv1D, RecurrentConv, local_response_norm
from jaxrnn.layers.rnn import RNN
from jaxrnn.layers.stacked import Stacked

__all__ = ["Bidirectional", "Conv1D", "Hierarchical", "RNN", "RecurrentConv", "Stacked", "local_response_norm"]

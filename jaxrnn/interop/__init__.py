"""Weight converters from PyTorch and Flax; neither library is imported by jaxrnn itself."""

from jaxrnn.interop.flax import carry_from_flax, carry_to_flax, from_flax
from jaxrnn.interop.torch import from_torch, from_torch_state, to_torch_state

__all__ = ["carry_from_flax", "carry_to_flax", "from_flax", "from_torch", "from_torch_state", "to_torch_state"]

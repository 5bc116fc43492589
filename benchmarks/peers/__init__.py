"""One module per implementation; each has NAME(S) and `build(spec) -> list[Case]`."""

from benchmarks.peers import equinox_peer, flax_peer, haiku_peer, jax_experimental_peer, jaxrnn_peer, nnx_peer, torch_peer

ALL = [jaxrnn_peer, flax_peer, nnx_peer, equinox_peer, haiku_peer, torch_peer, jax_experimental_peer]

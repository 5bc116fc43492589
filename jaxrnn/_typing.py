"""Type aliases shared across jaxrnn."""

from __future__ import annotations

from typing import Any

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # a pytree of arrays; cells use a plain dict with stable names
Carry = Any  # a pytree of arrays with leading batch dims

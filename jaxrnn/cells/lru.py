"""The linear recurrent unit (Orvieto et al. 2023): a diagonal complex linear recurrence."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.linear import LinearCell


class LRUState(NamedTuple):
    """The LRU carry: the real output ``h`` [*batch, H] of the last step and the complex diagonal
    state ``x`` [*batch, N]."""

    h: Array
    x: Array


def complex_dtype(dtype: Any) -> Any:
    """The complex dtype with `dtype`'s real precision (float32 -> complex64, float64 -> complex128)."""
    return jnp.result_type(dtype, jnp.complex64)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LRU(LinearCell):
    r"""Linear recurrent unit (Orvieto et al. 2023): complex diagonal state, real output.

    .. math::
        \lambda_j &= \exp(-e^{\nu_j} + i\,e^{\theta_j}), \qquad \gamma_j = e^{\gamma^{\log}_j} \\
        x_t &= \lambda \odot x_{t-1} + \gamma \odot (B u_t), \qquad
        h_t = \mathrm{Re}(C x_t) + D u_t

    The exponential parametrisation keeps ``|lambda| = exp(-exp(nu)) < 1`` (stable) for any ``nu``;
    ``lambda`` is drawn uniformly on the ring ``r_min <= |lambda| <= r_max`` with phase in
    ``[0, max_phase]``, and ``gamma`` starts at the normalisation ``sqrt(1 - |lambda|^2)`` that keeps
    the state's variance from growing as ``|lambda| -> 1``. ``B`` and ``C`` are complex Glorot-like
    normals (``1/sqrt(2 I)``, ``1/sqrt(N)``), as in the paper's code. The paper's skip ``D`` is
    diagonal (input size = H); here it is a dense ``[I, H]`` matrix, so the input size is free
    (``N(0, 1/I)``, the diagonal's output variance).

    Every step is linear in the state, so ``RNN(LRU(H), method="parallel")`` evaluates it with a
    complex associative scan in O(log T) depth, and ``method="sequential"`` with ``lax.scan``.
    DEER methods do not apply (the recurrence is already linear; its carry is complex).

    Args:
      hidden_size: output size H.
      state_size: complex state size N (default: H).
      r_min, r_max: the ring ``|lambda|`` is drawn from (the paper uses 0.9 / 0.999 on long-range tasks).
      max_phase: largest initial phase of ``lambda`` (default ``2 pi``; ``pi / 10`` in the paper's LRA runs).
      dtype: real dtype of the parameters (the state is the matching complex dtype).

    Params: ``w_ih`` [I, 2N] (``[Re B^T | Im B^T]``), ``w_skip`` [I, H] (``D``), ``nu_log``,
    ``theta_log``, ``gamma_log`` [N], ``c_re``, ``c_im`` [N, H].
    Carry: ``LRUState(h, x)``; the output is ``h``. With ``lengths``, the final ``h`` is the output at
    each sequence's last valid step. The diagnostics probe perturbs ``h`` (the output), which does not
    feed back into ``x``.

    Example::

        layer = jaxrnn.RNN(jaxrnn.LRU(64, state_size=128, r_min=0.9, r_max=0.999), method="parallel")
        params = layer.init(jax.random.key(0), input_size=8)
        ys, carry = layer.apply(params, xs)          # carry.x: complex64 [batch, 128]

    References:
      Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, "Resurrecting recurrent neural networks
      for long sequences", ICML 2023, arXiv:2303.06349.
    """

    use_bias: bool = dataclasses.field(init=False, default=False)  # the LRU has no bias
    state_size: int | None = None
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi

    hidden_is_state = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.state_size is not None:
            _checks.check_positive_int("LRU", "state_size", self.state_size)
        for name in ("r_min", "r_max", "max_phase"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"LRU: argument '{name}' must be a float, got {value!r}")
        if not 0.0 <= self.r_min < self.r_max <= 1.0:
            raise ValueError(
                f"LRU: arguments 'r_min', 'r_max' must satisfy 0 <= r_min < r_max <= 1, got {self.r_min}, {self.r_max}"
            )
        if self.max_phase <= 0:
            raise ValueError(f"LRU: argument 'max_phase' must be positive, got {self.max_phase}")
        if jnp.dtype(self.dtype) not in (jnp.float32, jnp.float64):
            # the state is complex, and JAX's complex types are complex64 / complex128 only
            raise ValueError(f"LRU: argument 'dtype' must be float32 or float64 (the state is complex), got {jnp.dtype(self.dtype).name}")

    @property
    def num_states(self) -> int:
        return self.state_size or self.hidden_size

    def init(self, key: PRNGKey, input_size: int) -> Params:
        _checks.check_positive_int("LRU.init", "input_size", input_size)
        N, H, I, dt = self.num_states, self.hidden_size, input_size, self.dtype
        k_nu, k_theta, k_b, k_c, k_d = jax.random.split(key, 5)
        # u1 > 0: |lambda| = r_min = 0 exactly would make nu_log infinite
        u1 = jax.random.uniform(k_nu, (N,), dt, minval=jnp.finfo(dt).tiny)
        u2 = jax.random.uniform(k_theta, (N,), dt)
        nu_log = jnp.log(-0.5 * jnp.log(u1 * (self.r_max**2 - self.r_min**2) + self.r_min**2))
        theta_log = jnp.log(self.max_phase * u2)
        modulus = jnp.exp(-jnp.exp(nu_log))
        b = jax.random.normal(k_b, (I, 2 * N), dt) / math.sqrt(2 * I)
        c = jax.random.normal(k_c, (2, N, H), dt) / math.sqrt(N)
        return {
            "w_ih": b,
            "w_skip": jax.random.normal(k_d, (I, H), dt) / math.sqrt(I),
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": jnp.log(jnp.sqrt(1.0 - modulus**2)),
            "c_re": c[0],
            "c_im": c[1],
        }

    def project(self, params: Params, xs: Array) -> Array:
        """``[Re(B x) | Im(B x) | D x]`` for any leading dims: one GEMM for the input and the skip."""
        return self.matmul(xs, jnp.concatenate([params["w_ih"], params["w_skip"]], axis=-1))

    def eigenvalues(self, params: Params) -> Array:
        """The diagonal ``lambda`` [N] (complex)."""
        return jnp.exp(-jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"]))

    def coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        N = self.num_states
        bu = jax.lax.complex(us[..., :N], us[..., N : 2 * N])
        b = jnp.exp(params["gamma_log"]) * bu
        return jnp.broadcast_to(self.eigenvalues(params).astype(b.dtype), b.shape), b

    def state(self, carry: LRUState) -> Array:
        return carry.x

    def readout(self, params: Params, state: Array, us: Array) -> tuple[LRUState, Array]:
        y = state.real @ params["c_re"] - state.imag @ params["c_im"] + us[..., 2 * self.num_states :]
        return LRUState(h=y, x=state), y

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> LRUState:
        dtype = params["w_ih"].dtype
        batch_shape = tuple(batch_shape)
        return LRUState(
            h=jnp.zeros((*batch_shape, self.hidden_size), dtype),
            x=jnp.zeros((*batch_shape, self.num_states), complex_dtype(dtype)),
        )

    @staticmethod
    def hidden(carry: LRUState) -> Array:
        return carry.h

    @staticmethod
    def with_hidden(carry: LRUState, h: Array) -> LRUState:
        return carry._replace(h=h)

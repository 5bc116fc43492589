"""`LanguageModel`: a character / token language model with streaming generation."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.models.base import check_layer, check_model_params, is_time_major
from jaxrnn.models.dense import Dense
from jaxrnn.models.embedding import Embedding
from jaxrnn.models.losses import masked_mean, step_mask
from jaxrnn.models.pooling import last_valid
from jaxrnn.models.sampling import check_sampling, sample_logits
from jaxrnn.models.streaming import check_causal, layer_step


@dataclasses.dataclass(frozen=True)
class LanguageModel:
    """Embedding, a causal recurrent layer, and a read-out to next-token logits.

    `apply` scores whole sequences (teacher forcing); `step` advances one token with the cells'
    `step`, and `generate` samples a continuation one token at a time inside a `lax.scan`, so
    generation costs one recurrent step per token. Streaming a sequence through `step` gives the
    same logits as `apply` on the whole sequence.

    Args:
      layer: a causal jaxrnn layer (a forward `RNN` or a `Stacked` of them) with input size `embed_size`.
      vocab_size: number of token ids V (characters for a character-level model).
      embed_size: size E of the token embeddings fed to the layer.

    Params: ``{"embed": {"table": [V, E]}, "layer": ..., "head": {"w": [H, V], "b": [V]}}``.

    Example::

        model = jaxrnn.models.LanguageModel(jaxrnn.RNN(jaxrnn.LSTM(256)), vocab_size=80, embed_size=32)
        params = model.init(jax.random.key(0))
        loss = model.loss(params, tokens)                    # mean nats per predicted token
        text = model.generate(params, jax.random.key(1), prompt, 200, temperature=0.8, top_k=10)

    References:
      Mikolov et al., "Recurrent neural network based language model", Interspeech 2010.
      Graves, "Generating sequences with recurrent neural networks", arXiv:1308.0850, 2013.
    """

    layer: Any
    vocab_size: int
    _: dataclasses.KW_ONLY
    embed_size: int = 32

    def __post_init__(self) -> None:
        check_layer("LanguageModel", self.layer)
        _checks.check_positive_int("LanguageModel", "vocab_size", self.vocab_size)
        _checks.check_positive_int("LanguageModel", "embed_size", self.embed_size)
        check_causal("LanguageModel", self.layer)

    @property
    def embed(self) -> Embedding:
        return Embedding(self.vocab_size, self.embed_size)

    @property
    def head(self) -> Dense:
        return Dense(self.vocab_size)

    @property
    def output_size(self) -> int:
        return self.vocab_size

    @property
    def _layout(self) -> str:
        return "[T, *batch]" if is_time_major(self.layer) else "[*batch, T]"

    def init(self, key: PRNGKey, input_size: int | None = None) -> Params:
        """Parameters; `input_size` (for the layer protocol) must be None or `vocab_size`."""
        if input_size is not None and input_size != self.vocab_size:
            raise ValueError(
                f"LanguageModel.init: argument 'input_size' must be None or vocab_size {self.vocab_size}, got {input_size!r}"
            )
        k_embed, k_layer, k_head = jax.random.split(key, 3)
        return {
            "embed": self.embed.init(k_embed),
            "layer": self.layer.init(k_layer, self.embed_size),
            "head": self.head.init(k_head, self.layer.output_size),
        }

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return self.layer.initial_carry(params["layer"], batch_shape)

    def apply(
        self,
        params: Params,
        tokens: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Array, Carry]:
        """Next-token logits ``[*batch, T, V]`` for every position, and the layer's final carry.

        Args:
          params: from `init`.
          tokens: integer ids ``[*batch, T]`` (``[T, *batch]`` for a time-major layer).
          lengths: optional ``[*batch]`` lengths of right-padded sequences.
          carry: optional carry to continue from (e.g. the final carry of a previous chunk).
          key: optional PRNG key for the layer's dropout.
        """
        fn = "LanguageModel.apply"
        check_model_params(fn, params, ("embed", "layer", "head"))
        tokens = self.embed.check_tokens(fn, "tokens", tokens, min_ndim=1, layout=self._layout)
        xs = self.embed.apply(params["embed"], tokens)
        ys, final = self.layer.apply(params["layer"], xs, lengths=lengths, carry=carry, key=key)
        return self.head.apply(params["head"], ys), final

    def loss(self, params: Params, tokens: Array, *, lengths: Array | None = None, key: PRNGKey | None = None) -> Array:
        """Mean next-token cross-entropy in nats over the valid pairs (divide by ln 2 for bits per token)."""
        logits, _ = self.apply(params, tokens, lengths=lengths, key=key)
        tokens = jnp.asarray(tokens)
        if is_time_major(self.layer):
            logits, tokens = jnp.moveaxis(logits, 0, -2), jnp.moveaxis(tokens, 0, -1)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits[..., :-1, :], tokens[..., 1:])
        return masked_mean(nll, step_mask(None if lengths is None else jnp.asarray(lengths) - 1, nll.shape[-1]))

    def step(self, params: Params, carry: Carry, token: Array) -> tuple[Carry, Array]:
        """Consumes one token ``[*batch]`` and returns ``(carry, logits [*batch, V])`` for the next one.

        Example::

            carry = model.initial_carry(params, (batch,))
            step = jax.jit(model.step)
            for tok in stream:                       # tok: [batch] ints
                carry, logits = step(params, carry, tok)
        """
        token = self.embed.check_tokens("LanguageModel.step", "token", token, min_ndim=0, layout="[*batch]")
        carry, y = layer_step(self.layer, params["layer"], carry, self.embed.apply(params["embed"], token))
        return carry, self.head.apply(params["head"], y)

    def generate(
        self,
        params: Params,
        key: PRNGKey,
        prompt: Array,
        num_steps: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        lengths: Array | None = None,
    ) -> Array:
        """Samples `num_steps` tokens ``[*batch, num_steps]`` continuing each prompt.

        The prompt runs through `apply` in one scan; then each new token is drawn from the logits
        (`sample_logits`: `temperature`, 0 for greedy, and `top_k`) and fed back with `step`.

        Args:
          params: from `init`.
          key: PRNG key for sampling.
          prompt: integer ids ``[*batch, P]`` with P >= 1 (``[P, *batch]`` for a time-major layer).
          num_steps: number of tokens to generate.
          temperature, top_k: see `sample_logits`.
          lengths: optional ``[*batch]`` prompt lengths (>= 1) of a right-padded batch of prompts.
        """
        fn = "LanguageModel.generate"
        _checks.check_key(fn, "key", key)
        _checks.check_positive_int(fn, "num_steps", num_steps)
        check_sampling(fn, temperature, top_k, self.vocab_size)
        prompt = self.embed.check_tokens(fn, "prompt", prompt, min_ndim=1, layout=self._layout)
        t_axis = 0 if is_time_major(self.layer) else -1
        if prompt.shape[t_axis] == 0:
            raise ValueError(f"{fn}: argument 'prompt' must hold at least one token per sequence, got shape {prompt.shape}")
        if lengths is not None and not isinstance(lengths, jax.core.Tracer) and np.size(lengths) and np.min(lengths) < 1:
            raise ValueError(f"{fn}: argument 'lengths' must be >= 1 (a prompt per sequence), got min {np.min(lengths)}")
        logits, carry = self.apply(params, prompt, lengths=lengths)
        if is_time_major(self.layer):
            logits = jnp.moveaxis(logits, 0, -2)
        last = last_valid(logits, lengths)

        def body(state: tuple[Carry, Array], k: PRNGKey) -> tuple[tuple[Carry, Array], Array]:
            c, lg = state
            tok = sample_logits(k, lg, temperature=temperature, top_k=top_k)
            c, lg = self.step(params, c, tok)
            return (c, lg), tok

        _, toks = jax.lax.scan(body, (carry, last), jax.random.split(key, num_steps))
        return jnp.moveaxis(toks, 0, -1)

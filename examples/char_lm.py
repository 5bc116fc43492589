"""A character-level LSTM language model on *Alice's Adventures in Wonderland*, with generated samples.

The first 90% of the book trains a `jaxrnn.models.LanguageModel` (embedding, LSTM, read-out) on
random windows; the last 10% is held out. Held-out bits per character are measured by streaming
the held-out text through the model in chunks, carrying the LSTM state across chunk boundaries,
and compared with the unigram baseline (each character's training frequency, add-one smoothed).
Samples are drawn one character at a time with the cell's `step` inside a `lax.scan`, at a few
temperatures and with top-k.

    python examples/char_lm.py --out runs/char_lm

Data: examples/data/alice29.txt (Lewis Carroll, 1865; public domain; Canterbury corpus copy).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import models  # noqa: E402


def load_text() -> str:
    return (_common.DATA / "alice29.txt").read_text(encoding="ascii")


class Vocabulary:
    """Characters <-> ids, ids in sorted character order."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids))


def unigram_bits(train: np.ndarray, held_out: np.ndarray, vocab_size: int) -> float:
    """Bits per character of `held_out` under the add-one-smoothed character frequencies of `train`."""
    counts = np.bincount(train, minlength=vocab_size) + 1.0
    return float(-np.mean(np.log2(counts[held_out] / counts.sum())))


def held_out_bits(model, params, ids: np.ndarray, streams: int, chunk: int) -> float:
    """Bits per character over `ids`, split into `streams` parallel streams read chunk by chunk, the carry
    passed from chunk to chunk so no character loses its context (the first one of each stream is not scored)."""
    n = (len(ids) // streams) * streams
    data = ids[:n].reshape(streams, -1)
    carry = model.initial_carry(params, (streams,))
    apply = jax.jit(model.apply)
    nll_sum, count, prev_last = 0.0, 0, None
    for start in range(0, data.shape[1], chunk):
        block = jnp.asarray(data[:, start : start + chunk])
        logits, carry = apply(params, block, carry=carry)
        logp = jax.nn.log_softmax(logits, -1)
        # predictions of the block's own characters 1..; then the first one, from the previous block
        nll = -jnp.take_along_axis(logp[:, :-1], block[:, 1:, None], -1).sum()
        count += block.shape[0] * (block.shape[1] - 1)
        if prev_last is not None:
            nll = nll - jnp.take_along_axis(prev_last, block[:, :1], -1).sum()
            count += block.shape[0]
        nll_sum += float(nll)
        prev_last = logp[:, -1]
    return nll_sum / count / math.log(2)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _common.parser(
        __doc__.splitlines()[0], "runs/char_lm",
        steps=1200, hidden=256, embed=32, seq=100, batch=32, lr=3e-3, sample_len=300, seed=0,
    ).parse_args(argv)
    out = _common.out_dir(args.out)
    text = load_text()
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train, held = ids[:split], ids[split:]
    rng = np.random.default_rng(args.seed)

    def batches():
        while True:
            starts = rng.integers(0, len(train) - args.seq - 1, args.batch)
            yield (jnp.asarray(np.stack([train[s : s + args.seq + 1] for s in starts])),)

    model = models.LanguageModel(jaxrnn.RNN(jaxrnn.LSTM(args.hidden)), len(vocab), embed_size=args.embed)
    print(f"{len(text):,} characters, vocabulary of {len(vocab)}; training on {len(train):,}, holding out {len(held):,}")
    print(jaxrnn.summary(model, None, (args.batch, args.seq + 1)))
    key_init, key_sample = jax.random.split(jax.random.key(args.seed))
    print(f"training ({args.steps} steps of {args.batch} x {args.seq + 1} characters)")
    params, hist = _common.fit(model.loss, model.init(key_init), batches(), args.steps, lr=args.lr,
                               log_every=max(args.steps // 6, 1))

    metrics = {
        "held_out_bpc_lstm": held_out_bits(model, params, held, streams=16, chunk=200),
        "held_out_bpc_unigram": unigram_bits(train, held, len(vocab)),
        "train_bpc_last_50_steps": float(np.mean(hist[-50:]) / math.log(2)),
    }
    print(f"\nheld-out bits per character: LSTM {metrics['held_out_bpc_lstm']:.3f}   "
          f"unigram baseline {metrics['held_out_bpc_unigram']:.3f}")

    prompt = "Alice was "
    generate = jax.jit(model.generate, static_argnums=3, static_argnames=("temperature", "top_k"))
    samples = []
    for temperature, top_k in ((1.0, None), (0.7, None), (0.5, 5)):
        key_sample, k = jax.random.split(key_sample)
        cont = generate(params, k, jnp.asarray(vocab.encode(prompt))[None], args.sample_len,
                        temperature=temperature, top_k=top_k)
        sample = prompt + vocab.decode(cont[0])
        samples.append(f"--- temperature {temperature}, top_k {top_k} ---\n{sample}\n")
        print(samples[-1])
    (out / "samples.txt").write_text("\n".join(samples))

    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    bits = np.asarray(hist) / math.log(2)
    ax.plot(bits, alpha=0.3, label="training batch")
    ax.plot(*_common.smooth(bits), label="25-step mean")
    ax.axhline(metrics["held_out_bpc_lstm"], color="C2", ls="--", label=f"held-out LSTM ({metrics['held_out_bpc_lstm']:.2f})")
    ax.axhline(metrics["held_out_bpc_unigram"], color="C3", ls=":", label=f"held-out unigram ({metrics['held_out_bpc_unigram']:.2f})")
    ax.set(title="character LM on Alice in Wonderland", xlabel="step", ylabel="bits per character")
    ax.legend()
    _common.save(fig, out / "char_lm.png")
    print(f"samples saved to {out / 'samples.txt'}")
    return metrics


if __name__ == "__main__":
    main()

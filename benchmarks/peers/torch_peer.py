"""PyTorch nn.LSTM / nn.GRU / nn.RNN (oneDNN on CPU, cuDNN on GPU)."""

from __future__ import annotations

from benchmarks.spec import Case, Spec, Unsupported

FAMILY = "pytorch"


def build(spec: Spec) -> list[Case]:
    try:
        import torch
    except ImportError as err:
        raise Unsupported("torch is not installed (pip install '.[bench]')") from err
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec.dtype]
    if device == "cpu" and dtype == torch.float16:
        raise Unsupported("PyTorch CPU RNNs have no float16 training path")
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[spec.cell]
    torch.manual_seed(0)
    module = cls(
        spec.input_size, spec.hidden, num_layers=spec.layers, bidirectional=spec.bidirectional, batch_first=True
    ).to(device=device, dtype=dtype)
    xs = torch.randn(spec.batch, spec.steps, spec.input_size, device=device, dtype=dtype)
    xs_grad = xs.clone().requires_grad_(True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            out, _ = module(xs)
        sync()
        return out

    def forward_backward():
        module.zero_grad(set_to_none=True)
        xs_grad.grad = None
        out, _ = module(xs_grad)
        out.float().sum().backward()
        sync()
        return out

    memory: dict[str, int] = {}
    if device == "cuda":
        for mode, fn in (("fwd", forward), ("fwdbwd", forward_backward)):
            torch.cuda.reset_peak_memory_stats()
            fn()
            memory[mode] = int(torch.cuda.max_memory_allocated())
    name = f"torch.{cls.__name__}" + ("(cuDNN)" if device == "cuda" else "")
    return [Case(impl=name, forward=forward, forward_backward=forward_backward, memory_bytes=memory)]

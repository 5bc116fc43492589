"""Markdown tables of times and ratios, written into a marked section of benchmarks/RESULTS.md."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import sys
from typing import Any

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
JAX_PEER_FAMILIES = {"flax.linen", "flax.nnx", "equinox", "haiku"}


def _ms(t: float | None) -> str:
    if t is None:
        return "–"
    ms = t * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _timing(entry: dict[str, Any], mode: str) -> str:
    t = entry.get(mode)
    if not t:
        return "–"
    return f"**{_ms(t['median'])}** [{_ms(t['min'])}–{_ms(t['max'])}]"


def _mib(n: int | None) -> str:
    return "–" if not n else f"{n / 2**20:.1f}"


def ratios(group: list[dict[str, Any]], mode: str) -> dict[str, float | None]:
    """jaxrnn time / best JAX peer and / PyTorch, for one spec and mode (< 1: jaxrnn is faster)."""
    ours = next((e for e in group if e["family"] == "jaxrnn" and e.get(mode)), None)
    if ours is None:
        return {"jax_peer": None, "torch": None}
    mine = ours[mode]["median"]
    jax_peers = [e[mode]["median"] for e in group if e["family"] in JAX_PEER_FAMILIES and e.get(mode)]
    torch_peers = [e[mode]["median"] for e in group if e["family"] == "pytorch" and e.get(mode)]
    return {
        "jax_peer": mine / min(jax_peers) if jax_peers else None,
        "torch": mine / min(torch_peers) if torch_peers else None,
    }


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def spec_table(group: list[dict[str, Any]]) -> str:
    ours = {m: next((e[m]["median"] for e in group if e["family"] == "jaxrnn" and e.get(m)), None) for m in ("fwd", "fwdbwd")}
    lines = [
        "| impl | fwd ms median [min–max] | fwd+bwd ms median [min–max] | jaxrnn/impl fwd | jaxrnn/impl fwd+bwd "
        "| compile s fwd / fwd+bwd | peak MiB fwd / fwd+bwd |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in group:
        if "skipped" in e:
            continue
        r = [(ours[m] / e[m]["median"]) if ours[m] and e.get(m) else None for m in ("fwd", "fwdbwd")]
        comp = e.get("compile_seconds", {})
        mem = e.get("memory_bytes", {})
        compile_s = f"{comp['fwd']:.2f} / {comp['fwdbwd']:.2f}" if "fwd" in comp else "–"
        lines.append(
            f"| {e['impl']} | {_timing(e, 'fwd')} | {_timing(e, 'fwdbwd')} | {_ratio(r[0])} | {_ratio(r[1])} "
            f"| {compile_s} | {_mib(mem.get('fwd'))} / {_mib(mem.get('fwdbwd'))} |"
        )
    skipped = [f"{e['impl']}: {e['skipped']}" for e in group if "skipped" in e]
    if skipped:
        lines.append("")
        lines.append("Skipped: " + "; ".join(skipped) + ".")
    return "\n".join(lines)


def summary_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| network | shape | dtype | fwd: jaxrnn / best JAX peer | fwd+bwd: jaxrnn / best JAX peer | fwd: jaxrnn / torch | fwd+bwd: jaxrnn / torch |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, group in _groups(results):
        network, shape, dtype = key
        f, b = ratios(group, "fwd"), ratios(group, "fwdbwd")
        lines.append(
            f"| {network} | {shape} | {dtype} | {_ratio(f['jax_peer'])} | {_ratio(b['jax_peer'])} | {_ratio(f['torch'])} | {_ratio(b['torch'])} |"
        )
    return "\n".join(lines)


def _groups(results: list[dict[str, Any]]):
    order: dict[tuple, list] = {}
    for e in results:
        order.setdefault((e["network"], e["shape"], e["dtype"]), []).append(e)
    return order.items()


def markdown(suite: str, env: dict[str, Any], results: list[dict[str, Any]], command: str) -> str:
    device = env.get("gpu") or env["cpu_model"]
    head = [
        f"## Suite `{suite}` — {device}",
        "",
        f"Command: `{command}`. Times are medians of repeated runs after warm-up (min–max in brackets); all "
        "implementations of a shape are compiled first and then timed in turn, one call each per round in a "
        "fresh random order, so "
        "the machine's drift falls on all of them alike and stays out of the ratios; "
        "forward and forward+backward (value_and_grad w.r.t. params and inputs), jitted; compile time and "
        "XLA's peak-memory estimate (arguments + outputs + temporaries) are reported apart. "
        "Ratios are jaxrnn time / other time: **below 1 means jaxrnn is faster**.",
        "",
        "Machine: " + ", ".join(f"{k}={env[k]}" for k in ("cpu_model", "cpu_count", "platform", "jax_backend", "XLA_FLAGS")),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        "### Summary",
        "",
        summary_table(results),
        "",
    ]
    body = []
    for (network, shape, dtype), group in _groups(results):
        body += [f"### {network}, {shape}, {dtype}", "", spec_table(group), ""]
    return "\n".join(head + body)


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that ran `module` with `argv` (default: this process's arguments), quoted so
    that it can be pasted back into a shell (``--only "fused backward"``)."""
    return f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else argv)


def write_section(suite: str, text: str, path: pathlib.Path = RESULTS) -> None:
    """Replaces (or appends) the section between this suite's markers, keeping the rest of the file."""
    start, end = f"<!-- suite:{suite}:start -->", f"<!-- suite:{suite}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)


def write_json(path: pathlib.Path | None, payload: dict[str, Any]) -> None:
    """Writes a benchmark's raw results to `path` (its folder created); nothing when `path` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))

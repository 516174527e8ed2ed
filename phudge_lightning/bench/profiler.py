"""Where a judge's time goes: the profiled share of matmul, attention and other kernels over
one ``grade_many`` pass (torch.profiler)."""

from __future__ import annotations

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation", "mkldnn::_linear_pointwise")


def op_class(name: str) -> str:
    """``matmul`` (the limit counts these FLOPs), ``attention`` (SDPA's kernels: T^2 work the limit
    leaves out) or ``other`` (norms, activations, rotary, copies, the head, Python)."""
    if name in MATMUL_OPS or name.startswith("mkldnn::_linear"):
        return "matmul"
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention"
    return "other"


def profile_judge(judge, records: list, batch_size: int) -> dict:
    """Where the judge's time goes: the share of CPU self-time per ``op_class`` over one
    ``grade_many`` pass (torch.profiler; its own overhead makes the pass slower), and the
    time spent in matmul kernels (``matmul_s``). The counted FLOPs over ``matmul_s`` against the
    peak (``matmul_efficiency``) is the most of the limit the judge could reach with every
    non-matmul cost gone. ``attention_s`` is the time in SDPA's kernels, work the limit does not
    count: t_limit / (t_limit + attention_s), t_limit = counted FLOPs / peak, is the most of the
    limit any judge with this attention kernel could reach, its matmuls at the peak and every other
    cost gone (``attention_bound``)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if judge.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        judge.grade_many(records, batch_size=batch_size)
    attr = "self_device_time_total" if judge.device.type == "cuda" else "self_cpu_time_total"
    spent = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    for event in prof.key_averages():
        spent[op_class(event.key)] += getattr(event, attr)
    total = sum(spent.values()) or 1.0
    return {f"{k}_share": v / total for k, v in spent.items()} | {"matmul_s": spent["matmul"] / 1e6,
                                                                  "attention_s": spent["attention"] / 1e6}

r"""Gradient checking: compare a hand-written backward with finite differences.

A layer's backward returns $\partial L / \partial x$ for the scalar
$L = \sum_i f(x)_i \, dout_i$, where ``dout`` is the upstream gradient. The checks
here estimate the same quantity with centered differences,

$$\frac{\partial L}{\partial x_j} \approx
\frac{\sum_i \big(f(x + h e_j) - f(x - h e_j)\big)_i \, dout_i}{2h},$$

whose error is $O(h^2)$ (the one-sided difference is only $O(h)$).

Relative error, scale aware:

$$\mathrm{rel}(a, b) = \frac{\max_j |a_j - b_j|}{\max(\varepsilon, \max_j (|a_j| +
|b_j|))}$$

Dividing by the largest magnitude rather than entry by entry keeps entries that
are near zero by cancellation from looking wrong.

Thresholds (float64, $h = 10^{-5}$):

- about $10^{-7}$ or less: the backward is right (the default ``threshold``);
- $10^{-7}$ to $10^{-4}$: suspicious; fine near kinks (relu at 0) or with deep
  stacks of layers;
- $10^{-2}$ or more: the backward is wrong.

Always check in float64: in float32 the rounding error of the difference,
$\approx 10^{-7} / h$, swamps the comparison. The check functions warn when ``x``
is not float64.

Two modes:

- **elementwise** (:func:`check_elementwise`): a random sample of entries, two
  forward passes per entry; the report names the worst entry.
- **directional** (:func:`check_directional`): for a random direction $u$
  (Gaussian, root-mean-square entry 1), compare $\langle \nabla_x L, u \rangle$ with
  $(L(x + h u) - L(x - h u)) / 2h$: two forward passes per direction, whatever
  the size of $x$ (the idea of ``torch.autograd.gradcheck(fast_mode=True)``,
  with $v$ = ``dout``).

Kinks: a check at random points almost never lands exactly on a kink, so a relu
backward that uses ``x >= 0`` instead of ``x > 0`` passes; test the kink values
separately.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from trainlab._validate import check_compatible, check_shape, check_tensor

GOOD_THRESHOLD = 1e-7
"""Relative error below which a float64 check passes."""

WRONG_THRESHOLD = 1e-2
"""Relative error above which the backward is almost surely wrong."""


def rel_error(
    a: torch.Tensor | float, b: torch.Tensor | float, eps: float = 1e-12
) -> float:
    r"""Scale-aware relative error $\max|a - b| / \max(\varepsilon, \max(|a| + |b|))$.

    Args:
        a, b: tensors of the same shape (or Python numbers); compared in float64
            on the CPU.
        eps: floor of the denominator, so that two zero tensors give 0. Default
            1e-12.

    Returns:
        The relative error as a Python float (0 for empty tensors).
    """
    a = torch.as_tensor(a).detach().to("cpu", torch.float64)
    b = torch.as_tensor(b).detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"rel_error needs tensors of the same shape; got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    if a.numel() == 0:
        return 0.0
    num = (a - b).abs().max()
    den = (a.abs() + b.abs()).max().clamp_min(eps)
    return float(num / den)


def _loss(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Evaluate f(x) and check that it returns a tensor."""
    out = f(x)
    if isinstance(out, tuple):
        raise TypeError(
            "f must return a tensor, got a tuple; wrap a layer's forward as "
            "lambda x: forward(x)[0]"
        )
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"f must return a torch.Tensor; got {type(out).__name__}")
    return out


def _directional_difference(
    f: Callable[[torch.Tensor], torch.Tensor],
    x_plus: torch.Tensor,
    x_minus: torch.Tensor,
    dout: torch.Tensor,
    h: float,
) -> torch.Tensor:
    r"""$\sum ((f(x_+) - f(x_-)) \cdot dout) / 2h$ as a 0-d tensor (no sync)."""
    f_plus = _loss(f, x_plus)
    f_minus = _loss(f, x_minus)
    if f_plus.shape != dout.shape:
        raise ValueError(
            f"dout must have the shape of f(x), {tuple(f_plus.shape)}; got "
            f"{tuple(dout.shape)}"
        )
    # difference first, then the dot product: less cancellation than two big sums
    return ((f_plus - f_minus) * dout).sum() / (2.0 * h)


def numerical_gradient(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dout: torch.Tensor,
    h: float = 1e-5,
) -> torch.Tensor:
    r"""Centered-difference gradient of $L(x) = \sum f(x) \cdot dout$ for every entry.

    Each entry $x_j$ is moved to $x_j \pm h$ in place, $f$ is evaluated, and the
    entry is set back to its saved value, so ``x`` is unchanged on return (also
    when ``f`` raises). Costs $2 \cdot$ ``x.numel()`` calls of ``f``: use it on
    small inputs, and :func:`check_directional` on large ones.

    Args:
        f: function of ``x`` alone returning a tensor of ``dout``'s shape, e.g.
            ``lambda x: relu_forward(x)[0]``.
        x: the input, any shape, device and floating dtype (float64 recommended).
        dout: upstream gradient, the shape of ``f(x)``.
        h: step. Default 1e-5 (good in float64).

    Returns:
        The estimated gradient, shape, dtype and device of ``x``.
    """
    x = check_tensor(x, "x")
    dout = check_tensor(dout, "dout")
    grad = torch.zeros_like(x)
    with torch.no_grad():
        for idx in itertools.product(*(range(n) for n in x.shape)):
            old = x[idx].clone()
            try:
                x[idx] = old + h
                # clone both: f may return a view of x, which the next
                # assignment (or the restore below) would change under us
                f_plus = _loss(f, x).clone()
                x[idx] = old - h
                f_minus = _loss(f, x).clone()
            finally:
                x[idx] = old
            if f_plus.shape != dout.shape:
                raise ValueError(
                    f"dout must have the shape of f(x), {tuple(f_plus.shape)}; got "
                    f"{tuple(dout.shape)}"
                )
            grad[idx] = ((f_plus - f_minus) * dout).sum() / (2.0 * h)
    return grad


@dataclass
class GradCheckReport:
    r"""The outcome of a gradient check, printable for a person.

    Attributes:
        mode: ``"elementwise"`` or ``"directional"``.
        passed: ``rel_error <= threshold``.
        rel_error: scale-aware relative error over all checked entries/directions.
        threshold: the pass threshold used.
        worst_index: elementwise: the index into ``x`` of the entry with the largest
            absolute difference; directional: ``(j,)``, the number of the worst
            direction; ``None`` when nothing was checked.
        analytic: the analytic value there (a gradient entry, or
            $\langle \nabla, u \rangle$).
        numeric: the finite-difference value there.
        checked: how many entries or directions were checked.
        name: the gradient's name in messages, e.g. ``"dx"``.
        note: remarks, e.g. that ``x`` was not float64.
    """

    mode: str
    passed: bool
    rel_error: float
    threshold: float
    worst_index: tuple[int, ...] | None
    analytic: float
    numeric: float
    checked: int
    name: str = "dx"
    note: str = ""

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        unit = "entries" if self.mode == "elementwise" else "directions"
        cmp = "<=" if self.passed else ">"
        lines = [
            f"gradient check of {self.name} ({self.mode}, {self.checked} {unit}): "
            f"{verdict}"
        ]
        if self.worst_index is not None:
            if self.mode == "elementwise":
                where = (
                    f"worst entry {self.name}[{', '.join(map(str, self.worst_index))}]"
                )
            else:
                where = f"worst direction {self.worst_index[0]} (<{self.name}, u>)"
            lines.append(
                f"  {where}: analytic {self.analytic:.6g}, numeric {self.numeric:.6g}, "
                f"relative error {self.rel_error:.1e} {cmp} {self.threshold:.0e}"
            )
        if not self.passed:
            if self.rel_error >= WRONG_THRESHOLD:
                lines.append(
                    "  a relative error this large means the backward is wrong"
                )
            else:
                lines.append(
                    "  suspicious: check for kinks, float32 inputs or a too small h"
                )
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def _check_inputs(
    x: torch.Tensor, dout: torch.Tensor, analytic: torch.Tensor, name: str
) -> str:
    """Validate the check's inputs; return a note (and warn) when x is not float64."""
    x = check_tensor(x, "x")
    dout = check_tensor(dout, "dout")
    analytic = check_tensor(analytic, name)
    check_shape(analytic, name, x.shape)
    check_compatible(x, "x", **{name: analytic})
    if dout.device != x.device:
        raise ValueError(
            f"dout is on {dout.device} but x is on {x.device}; move them to the "
            "same device"
        )
    if x.dtype != torch.float64:
        note = (
            f"x is {x.dtype}, not torch.float64: rounding error may dominate; "
            "check in float64"
        )
        warnings.warn(note, stacklevel=3)
        return note
    return ""


def check_elementwise(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dout: torch.Tensor,
    analytic: torch.Tensor,
    *,
    num_samples: int = 20,
    h: float = 1e-5,
    threshold: float = GOOD_THRESHOLD,
    generator: torch.Generator | None = None,
    name: str = "dx",
) -> GradCheckReport:
    r"""Check ``analytic`` against centered differences at randomly sampled entries.

    ``num_samples`` distinct entries of ``x`` are drawn (all of them when ``x`` is
    smaller); for each, two forward passes give the numerical derivative. The
    relative error is :func:`rel_error` over the sampled entries; the worst entry
    is the one with the largest absolute difference.

    Args:
        f: function of ``x`` alone returning a tensor of ``dout``'s shape.
        x: the point, any shape; float64 recommended (warns otherwise). Not
            modified.
        dout: the upstream gradient that produced ``analytic``.
        analytic: the gradient from the backward pass, the shape of ``x``.
        num_samples: entries to check. Default 20.
        h: step. Default 1e-5.
        threshold: pass when the relative error is at most this. Default 1e-7.
        generator: CPU ``torch.Generator`` for the sample, for reproducible checks.
            Default None (the global generator).
        name: the gradient's name in the report. Default ``"dx"``.

    Returns:
        A :class:`GradCheckReport`; ``print`` it for a readable message.
    """
    note = _check_inputs(x, dout, analytic, name)
    k = min(num_samples, x.numel())
    if k == 0:
        return GradCheckReport(
            "elementwise", True, 0.0, threshold, None, 0.0, 0.0, 0, name, note
        )
    flat_ids = torch.randperm(x.numel(), generator=generator)[:k]  # (k,)
    coords = torch.unravel_index(flat_ids, x.shape)  # x.dim() tensors of (k,)
    indices = [tuple(int(c[i]) for c in coords) for i in range(k)]
    numeric = []
    with torch.no_grad():
        for idx in indices:
            x_plus, x_minus = x.clone(), x.clone()  # x itself is never touched
            x_plus[idx] += h
            x_minus[idx] -= h
            numeric.append(_directional_difference(f, x_plus, x_minus, dout, h))
    num = torch.stack(numeric).to("cpu", torch.float64)  # (k,)
    ana = torch.stack([analytic[idx] for idx in indices]).detach()
    ana = ana.to("cpu", torch.float64)  # (k,)
    return _report("elementwise", ana, num, indices, threshold, name, note)


def _report(
    mode: str,
    ana: torch.Tensor,
    num: torch.Tensor,
    indices: list[tuple[int, ...]],
    threshold: float,
    name: str,
    note: str,
) -> GradCheckReport:
    """Build the report from paired analytic and numeric values (1-D, CPU)."""
    err = rel_error(ana, num)
    w = int((ana - num).abs().argmax())
    return GradCheckReport(
        mode=mode,
        passed=err <= threshold,
        rel_error=err,
        threshold=threshold,
        worst_index=indices[w],
        analytic=float(ana[w]),
        numeric=float(num[w]),
        checked=len(indices),
        name=name,
        note=note,
    )


def check_directional(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dout: torch.Tensor,
    analytic: torch.Tensor,
    *,
    num_directions: int = 2,
    h: float = 1e-5,
    threshold: float = GOOD_THRESHOLD,
    generator: torch.Generator | None = None,
    name: str = "dx",
) -> GradCheckReport:
    r"""Check ``analytic`` along random directions: cost independent of ``x``'s size.

    For each of ``num_directions`` random directions $u$ (the shape of ``x``),
    compare

    $$\langle \mathrm{analytic}, u \rangle \quad\text{with}\quad
    \frac{\sum \big(f(x + h u) - f(x - h u)\big) \cdot dout}{2h},$$

    i.e. $v^T J u$ with $v$ = ``dout``: exactly 2 calls of ``f`` per direction,
    whether ``x`` has ten entries or ten million. Any wrong entry of the gradient
    shows up, since a random $u$ has a component along it with probability 1.
    It says *that* the gradient is wrong, not *where*: use
    :func:`check_elementwise` on a small input to locate the error.

    Scaling of $u$: Gaussian, rescaled so that its root-mean-square entry is 1
    ($\|u\| = \sqrt{\text{numel}}$), so each entry of ``x`` moves by about $h$, as
    in the elementwise check. A unit-norm $u$ would move each entry by only
    $h / \sqrt{\text{numel}}$; for a (256, 1024) input of magnitude 10 that step
    is so small that rounding ``x + h u`` alone costs a relative error of $10^{-7}$.

    Args:
        f: function of ``x`` alone returning a tensor of ``dout``'s shape.
        x: the point, any shape; float64 recommended (warns otherwise). Not
            modified.
        dout: the upstream gradient that produced ``analytic``.
        analytic: the gradient from the backward pass, the shape of ``x``.
        num_directions: random directions to try. Default 2.
        h: step per entry (along $u$ with RMS entry 1). Default 1e-5.
        threshold: pass when the relative error is at most this. Default 1e-7.
        generator: CPU ``torch.Generator`` for the directions. Default None.
        name: the gradient's name in the report. Default ``"dx"``.

    Returns:
        A :class:`GradCheckReport` whose ``worst_index`` is ``(j,)``, the number of
        the worst direction.
    """
    note = _check_inputs(x, dout, analytic, name)
    if num_directions < 1:
        raise ValueError(f"num_directions must be at least 1; got {num_directions}")
    ana, num = [], []
    with torch.no_grad():
        for _ in range(num_directions):
            u = torch.randn(x.shape, generator=generator, dtype=torch.float64)
            rms = (u.norm() / max(u.numel(), 1) ** 0.5).clamp_min(1e-300)
            u = (u / rms).to(x.device)  # RMS entry 1
            ana.append((analytic.detach().double() * u).sum())
            u = u.to(x.dtype)
            num.append(_directional_difference(f, x + h * u, x - h * u, dout, h))
    ana_t = torch.stack(ana).to("cpu", torch.float64)  # (num_directions,)
    num_t = torch.stack(num).to("cpu", torch.float64)  # (num_directions,)
    indices = [(j,) for j in range(num_directions)]
    return _report("directional", ana_t, num_t, indices, threshold, name, note)


def _fresh(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Copy tensor arguments, so a forward that updates them in place (batchnorm's
    running statistics) changes neither the caller's tensors nor later calls."""
    return {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()
    }


def check_layer(
    forward: Callable[..., tuple[torch.Tensor, Any]],
    backward: Callable[[torch.Tensor, Any], torch.Tensor | tuple[torch.Tensor, ...]],
    inputs: Mapping[str, torch.Tensor],
    *,
    mode: str = "elementwise",
    extra_kwargs: Mapping[str, Any] | None = None,
    num_samples: int = 20,
    num_directions: int = 2,
    h: float = 1e-5,
    threshold: float = GOOD_THRESHOLD,
    generator: torch.Generator | None = None,
) -> dict[str, GradCheckReport]:
    r"""Gradient-check every differentiable input of a ``forward``/``backward`` pair.

    What it does, exactly:

    1. ``out, cache = forward(**inputs, **extra_kwargs)``.
    2. ``dout`` = standard normal noise of ``out``'s shape (drawn in float64 on the
       CPU from ``generator``, then moved to ``out``'s device and dtype); never
       ones, which would hide errors that cancel in a plain sum.
    3. ``grads = backward(dout, cache)``; a single tensor counts as a 1-tuple. It
       must hold one gradient per entry of ``inputs``, **in the order of
       ``inputs``**, each of that input's shape.
    4. For each name ``p`` in ``inputs``, checks ``d<p>`` with
       :func:`check_elementwise` or :func:`check_directional` on
       ``f(v) = forward(**{**inputs, p: v}, **extra_kwargs)[0]``.

    Tensor values in ``extra_kwargs`` are cloned before every call of ``forward``,
    so running statistics updated in place are left as the caller had them.

    Args:
        forward: layer forward, returning ``(out, cache)``.
        backward: layer backward, ``backward(dout, cache)``.
        inputs: the differentiable inputs by keyword, in the order ``backward``
            returns their gradients, e.g. ``{"x": x, "gamma": g, "beta": b}``.
        mode: ``"elementwise"`` (default) or ``"directional"``.
        extra_kwargs: other keyword arguments of ``forward`` (not checked), e.g.
            ``{"running_mean": rm, "running_var": rv, "training": True}``.
            Default None.
        num_samples: entries per input in elementwise mode. Default 20.
        num_directions: directions per input in directional mode. Default 2.
        h: finite-difference step. Default 1e-5.
        threshold: pass threshold on the relative error. Default 1e-7.
        generator: CPU ``torch.Generator`` for ``dout`` and the samples. Default
            None.

    Returns:
        ``{"dx": report, "dgamma": report, ...}``, one report per input, keyed by
        ``"d" + name``.

    Example:
        >>> reports = check_layer(batchnorm_forward, batchnorm_backward,
        ...     {"x": x, "gamma": gamma, "beta": beta},
        ...     extra_kwargs={"running_mean": rm, "running_var": rv})
        >>> all(r.passed for r in reports.values())
        True
    """
    if mode not in ("elementwise", "directional"):
        raise ValueError(f"mode must be 'elementwise' or 'directional'; got {mode!r}")
    if not inputs:
        raise ValueError("inputs must name at least one differentiable input")
    extra = dict(extra_kwargs or {})
    clash = set(extra) & set(inputs)
    if clash:
        raise ValueError(f"{sorted(clash)} given both in inputs and in extra_kwargs")
    for key, value in inputs.items():
        check_tensor(value, key)

    out, cache = forward(**inputs, **_fresh(extra))
    out = check_tensor(out, "forward output")
    dout = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    dout = dout.to(out.device, out.dtype)
    grads = backward(dout, cache)
    if isinstance(grads, torch.Tensor):
        grads = (grads,)
    names = list(inputs)
    if len(grads) != len(names):
        raise ValueError(
            f"backward returned {len(grads)} gradient(s) but inputs names "
            f"{len(names)} differentiable input(s) ({', '.join(names)}); pass the "
            "others in extra_kwargs, in the order backward returns gradients"
        )

    reports: dict[str, GradCheckReport] = {}
    for name, grad in zip(names, grads, strict=True):
        value = inputs[name]
        grad = check_tensor(grad, f"d{name}")
        if tuple(grad.shape) != tuple(value.shape):
            raise ValueError(
                f"backward returned d{name} of shape {tuple(grad.shape)}; expected "
                f"{tuple(value.shape)}, the shape of {name}"
            )

        def f(v: torch.Tensor, name: str = name) -> torch.Tensor:
            return forward(**{**inputs, name: v}, **_fresh(extra))[0]

        if mode == "elementwise":
            rep = check_elementwise(
                f,
                value,
                dout,
                grad,
                num_samples=num_samples,
                h=h,
                threshold=threshold,
                generator=generator,
                name=f"d{name}",
            )
        else:
            rep = check_directional(
                f,
                value,
                dout,
                grad,
                num_directions=num_directions,
                h=h,
                threshold=threshold,
                generator=generator,
                name=f"d{name}",
            )
        reports[f"d{name}"] = rep
    return reports

"""Forward-mode autograd (dual numbers) is autograd: a manual backward may not use it.

The rule lives in ``own_code.Guard``: every graded call runs with forward-mode
gradients off (as under ``no_grad`` for reverse mode), and a call that reaches
forward mode, however it gets there, is reported where the rules forbid
autograd.
"""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD

from autograder.checks import own_code
from autograder.checks.core import Mistake

pytestmark = pytest.mark.grader
NO_AUTOGRAD = own_code.rules()  # a manual backward: autograd forbidden
ANY = own_code.rules(autograd=False)


def _square_jvp_api(x):
    with fwAD.dual_level():
        y = fwAD.make_dual(x, torch.ones_like(x)) ** 2
        return fwAD.unpack_dual(y).tangent


def _square_jvp_c(x):
    torch._C._enter_dual_level()
    try:
        y = torch._VF._make_dual(x, torch.ones_like(x), level=0) ** 2
        return torch._VF._unpack_dual(y, level=0)[1]
    finally:
        torch._C._exit_dual_level(level=0)


def _switch_on_then_api(x):
    torch._C._set_fwd_grad_enabled(True)
    return _square_jvp_api(x)


def _aliased(x):
    make, unpack, level = fwAD.make_dual, fwAD.unpack_dual, fwAD.dual_level
    with level():
        return unpack(make(x, torch.ones_like(x)) * x).tangent


CHEATS = {
    "forward_ad's API": _square_jvp_api,
    "torch._C and torch._VF": _square_jvp_c,
    "forward gradients switched back on": _switch_on_then_api,
    "aliases of the API": _aliased,
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_forward_mode_in_a_manual_backward_is_autograd(name):
    guard = own_code.Guard(NO_AUTOGRAD, "batchnorm_backward")
    with pytest.raises(Mistake, match="autograd"):
        guard.call(CHEATS[name], torch.randn(4, dtype=torch.float64))


def test_where_autograd_is_allowed_forward_mode_still_computes_no_tangent():
    guard = own_code.Guard(ANY, "f")
    assert guard.call(_square_jvp_api, torch.randn(4, dtype=torch.float64)) is None
    seen = own_code.Guard(ANY, "g").call(lambda: torch._C._is_fwd_grad_enabled())
    assert seen is False
    assert torch._C._is_fwd_grad_enabled()  # and it is back on after the call

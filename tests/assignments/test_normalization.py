"""The normalization assignment's notebooks, as a grader and a student see them."""

from __future__ import annotations

import pytest

from tests.assignments import notebook_checks as nc

pytestmark = [pytest.mark.assignments, pytest.mark.norm, pytest.mark.slow]

NAME = "normalization"


def test_solution_scores_full_marks():
    nc.check_solution(NAME)


def test_untouched_student_notebook_scores_zero_with_not_implemented_only():
    nc.check_untouched(NAME)


def test_mistake_borrowed_answer_and_other_correct_code_end_to_end():
    interleaved = nc.edited(
        NAME,
        "groupnorm_forward",
        [
            (
                "xg = x.reshape(n, num_groups, -1)",
                "xg = x.reshape(n, c // num_groups, num_groups, -1).transpose(1, 2)"
                ".reshape(n, num_groups, -1)",
            ),
            (
                "x_hat = xc.mul_(inv_std).reshape(x.shape)",
                "x_hat = xc.mul_(inv_std).reshape(n, num_groups, c // num_groups, -1)"
                ".transpose(1, 2).reshape(x.shape)",
            ),
        ],
    )
    borrowed = (
        "def layernorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    out = F.layer_norm(x, tuple(gamma.shape), gamma, beta, eps)\n"
        "    dims = tuple(range(x.dim() - gamma.dim(), x.dim()))\n"
        "    var = x.var(dims, unbiased=False, keepdim=True)\n"
        "    inv_std = 1 / torch.sqrt(var + eps)\n"
        "    x_hat = (x - x.mean(dims, keepdim=True)) * inv_std\n"
        "    return out, {'x_hat': x_hat, 'inv_std': inv_std, 'gamma': gamma,"
        " 'dims': dims}\n"
    )
    loops = (
        "def instancenorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    out = torch.empty_like(x)\n"
        "    x_hat = torch.empty_like(x)\n"
        "    inv = torch.empty(x.shape[:2] + (1,) * (x.dim() - 2), dtype=x.dtype)\n"
        "    for i in range(x.shape[0]):\n"
        "        for c in range(x.shape[1]):\n"
        "            v = x[i, c]\n"
        "            r = 1 / torch.sqrt(((v - v.mean()) ** 2).mean() + eps)\n"
        "            x_hat[i, c] = (v - v.mean()) * r\n"
        "            inv[i, c] = r\n"
        "            out[i, c] = gamma[c] * x_hat[i, c] + beta[c]\n"
        "    return out, {'x_hat': x_hat, 'inv_std': inv.to(x.device), 'gamma': gamma,"
        " 'dims': tuple(range(2, x.dim()))}\n"
    )
    nc.check_mixed_submission(
        NAME,
        {
            "groupnorm_forward": interleaved,
            "layernorm_forward": borrowed,
            "instancenorm_forward": loops,
        },
        # the borrowed forward costs its backward too: the backward is graded
        # on the forward's cache, which could carry the answer
        losing={
            "test_groupnorm_forward",
            "test_layernorm_forward",
            "test_layernorm_backward",
        },
        zero={"test_layernorm_forward", "test_layernorm_backward"},
        phrases={
            "test_groupnorm_forward": "the groups look interleaved",
            "test_layernorm_forward": "torch.nn.functional",
        },
    )


def test_finished_student_notebook_runs_within_two_minutes():
    nc.check_finished_student(NAME)

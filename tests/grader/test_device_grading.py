"""Grading on a device: ``--device``, CUDA never in a process that forks, and
graded calls moved to the device in the runner.

Without a GPU the moves are tried with torch's ``meta`` device, which every
machine has: the same code path moves a call's tensors to ``cuda:0`` there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from autograder.checks import common, own_code, placement
from autograder.pipeline import cli, device, pool
from autograder.sandbox import gpu, runner
from autograder.sandbox import isolation as sandbox

pytestmark = pytest.mark.grader
ROOT = Path(__file__).resolve().parents[2]
NO_GPU = "this machine has a CUDA GPU: the refusal is for machines without one"
LIMITS = sandbox.Limits(call_timeout=5, cell_timeout=20, notebook_timeout=120)

ANSWERS = """
def agnostic(x):
    return x * 2 + x.new_zeros(x.shape)
def host_zeros(x):
    out = torch.zeros(x.shape, dtype=x.dtype)
    return out + 2 * x if x.device.type == "cpu" else out
def host_mask(x):
    return x * torch.ones(x.shape[-1])
def from_shape(shape):
    return torch.ones(shape)
def gpu_breaks(x):
    if x.device.type != "cpu":
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return x + 1
def fill(w, generator):
    return torch.randn(w.shape, generator=generator, dtype=w.dtype)
def updates_then_mixes(x, running):
    running.add_(1)
    return x + torch.zeros(3)
"""


class CudaCalls:
    """Records every call of a Python function of ``torch.cuda`` in this process."""

    def __init__(self) -> None:
        self.folder = os.path.dirname(torch.cuda.__file__) + os.sep
        self.seen: list[str] = []

    def _profile(self, frame, event, arg) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(self.folder):
            self.seen.append(frame.f_code.co_name)
        elif event == "c_call" and getattr(arg, "__module__", "") == "torch._C":
            if "cuda" in getattr(arg, "__name__", "").lower():
                self.seen.append(arg.__name__)

    def __enter__(self) -> CudaCalls:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)


def _fake_gpu(tmp_path: Path) -> str:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidiactl", "nvidia0", "nvidia-uvm"):
        (dev / name).touch()
    return str(dev)


def test_the_flag_takes_auto_cpu_cuda_only(capsys):
    for choice in ("auto", "cpu", "cuda"):
        args = cli.build_parser().parse_args(["check", "x.ipynb", "--device", choice])
        assert args.device == choice
    assert cli.build_parser().parse_args(["grade", "subs"]).device == "auto"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["grade", "subs", "--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="one of auto, cpu, cuda; got 'tpu'"):
        device.resolve("tpu")


@pytest.mark.skipif(gpu.has_gpu_files(), reason=NO_GPU)
def test_auto_is_the_cpu_and_cuda_is_refused_here(capsys, tmp_path):
    found = device.resolve("auto")
    assert (found.kind, found.name) == ("cpu", "cpu")
    assert "no CUDA GPU on this machine" in found.note
    nb = ROOT / "notebooks" / "gradcheck" / "gradcheck.ipynb"
    for command in (["check", str(nb)], ["grade", str(tmp_path)]):
        assert cli.main([*command, "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "error: --device cuda: no CUDA GPU on this machine" in err
        assert "no NVIDIA device files at all" in err and "--device cpu" in err


def test_device_files_without_cuda_torch_are_named(tmp_path):
    """Device files but a CPU-only torch (as here): the probe, in its own
    interpreter, says why; this process calls nothing of torch.cuda."""
    dev = _fake_gpu(tmp_path)
    with CudaCalls() as calls:
        found = device.resolve("auto", dev=dev)
    assert calls.seen == []
    if found.kind == "cuda":
        pytest.skip("this machine's torch has CUDA: the probe found a GPU")
    assert found.kind == "cpu" and found.note
    with pytest.raises(device.DeviceUnavailable, match="--device cuda: ") as exc:
        device.resolve("cuda", dev=dev)
    if torch.version.cuda is None:
        assert "is a CPU-only build" in str(exc.value)


def test_the_probe_runs_in_another_interpreter():
    found = device.probe()
    assert found.get("torch") == torch.__version__, found
    assert found.get("cuda") == torch.version.cuda


def test_the_verifier_never_asks_torch_cuda_while_grading():
    placement.configure("cuda")
    try:
        with CudaCalls() as calls:
            found = own_code.devices()
            pairs = common.device_pairs()
    finally:
        placement.configure(None)
    assert found == [torch.device("cpu")] and pairs == []
    assert calls.seen == []


def test_workers_see_gpus_only_for_cuda(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    cpu = pool.worker_env("/tmp/h", "cpu")
    cuda = pool.worker_env("/tmp/h", "cuda")
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""
    assert cuda["CUDA_VISIBLE_DEVICES"] == "1"
    for env in (cpu, cuda):  # a stray is_available() asks NVML, not the driver
        assert env["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"


def test_feedback_names_the_device():
    assert device.device_note("cpu") == device.DEVICE_NOTE
    note = device.device_note("cuda", "cuda:0 (NVIDIA H200)")
    assert "cuda:0 (NVIDIA H200)" in note and "float64 on the CPU" in note


@pytest.fixture
def client(policy):
    from autograder.pipeline import verify

    c = runner.RunnerClient(
        ["import torch"],
        [{"grade_id": "answer", "source": ANSWERS}],
        limits=LIMITS,
        policy=verify._runner_policy(policy),
    )
    c.start()
    yield c
    c.close()


def _guard(name: str, **kw) -> own_code.Guard:
    return own_code.Guard(own_code.rules(), name, **kw)


def test_calls_move_to_the_grading_device(client):
    fns = client.functions()
    x = torch.arange(6.0).reshape(2, 3)
    placement.configure("meta")
    try:
        guard = _guard("agnostic")
        out = guard.call(fns["agnostic"], x)
    finally:
        placement.configure(None)
    # it ran on the device: a meta result, shapes only
    assert out.device.type == "meta" and out.shape == (2, 3)
    assert guard.device_notes == []


def test_a_tensor_left_on_the_host_is_named_and_graded_on_the_cpu(client):
    fns = client.functions()
    x = torch.arange(6.0).reshape(2, 3)
    placement.configure("meta")
    try:
        guard = _guard("host_zeros")
        out = guard.call(fns["host_zeros"], x)
        mixed = _guard("host_mask")
        out2 = mixed.call(fns["host_mask"], x)
    finally:
        placement.configure(None)
    assert torch.equal(out, 2 * x)  # the CPU's answer, for the other checks
    assert guard.device_notes == [
        placement.off_device_message("host_zeros", "cpu", "meta")
    ]
    assert guard.device_notes[0].startswith(
        "your function returned a tensor on cpu for an input on meta: create "
        "tensors with device=x.device or x.new_zeros"
    )
    assert torch.equal(out2, x)
    assert (
        mixed.device_notes
        and "host_mask works only on the CPU" in (mixed.device_notes[0])
    )


def test_in_place_changes_are_not_applied_twice(client):
    """A call that failed on the device is made again on the CPU from the
    caller's own tensors: the running statistics move once."""
    fns = client.functions()
    x, running = torch.zeros(3), torch.zeros(3)
    placement.configure("meta")
    try:
        guard = _guard("updates_then_mixes", inplace=(1,))
        out = guard.call(fns["updates_then_mixes"], x, running)
    finally:
        placement.configure(None)
    assert torch.equal(running, torch.ones(3))
    assert torch.equal(out, torch.zeros(3)) and guard.device_notes


def test_a_call_without_tensors_keeps_its_own_device(client):
    """An initializer given only a shape creates its tensor on the CPU: that is
    no device mistake (nothing was on the device to follow)."""
    fns = client.functions()
    placement.configure("meta")
    try:
        guard = _guard("from_shape")
        out = guard.call(fns["from_shape"], (2, 3))
    finally:
        placement.configure(None)
    assert torch.equal(out, torch.ones(2, 3)) and guard.device_notes == []


def test_a_call_given_a_cpu_generator_stays_on_the_cpu(client):
    """Random numbers are drawn on the generator's device, as the key's are."""
    fns = client.functions()
    placement.configure("meta")
    try:
        guard = _guard("fill")
        out = guard.call(
            fns["fill"], torch.zeros(2, 3), torch.Generator().manual_seed(1)
        )
    finally:
        placement.configure(None)
    want = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, want) and guard.device_notes == []


def test_a_failure_of_the_gpu_itself_is_no_mistake_of_the_student(client):
    """cuBLAS or the driver failing is the grader's problem: the call runs on
    the CPU, the student loses nothing, and the verifier notes it."""
    fns = client.functions()
    placement.configure("meta")
    try:
        guard = _guard("gpu_breaks")
        out = guard.call(fns["gpu_breaks"], torch.zeros(3))
        failures = list(placement.failures)
    finally:
        placement.configure(None)
    assert torch.equal(out, torch.ones(3)) and guard.device_notes == []
    assert len(failures) == 1
    assert failures[0].startswith("gpu_breaks: RuntimeError: CUDA error: an illegal")
    assert placement.failures == []  # forgotten with the run


def test_on_cpu_nothing_moves(client):
    fns = client.functions()
    x = torch.arange(3.0)
    placement.configure("cpu")
    try:
        guard = _guard("host_zeros")
        out = guard.call(fns["host_zeros"], x)
    finally:
        placement.configure(None)
    assert torch.equal(out, 2 * x) and guard.device_notes == []


@pytest.mark.cuda
@pytest.mark.skipif(not gpu.has_gpu_files(), reason="no CUDA device on this machine")
def test_a_sandbox_initializes_cuda(policy):
    """On a GPU machine: the sandbox with the GPU's files runs CUDA."""
    import dataclasses

    files = gpu.select("cuda")
    pol = dataclasses.replace(
        policy, devices=files.devices, allow=policy.allow + files.readonly
    )
    name = device.require_in_sandbox(pol, sandbox.Limits(), "cuda")
    assert name
    assert not sandbox.cuda_driver_loaded()  # and this process never used CUDA


def test_the_verifier_rebuilds_a_generator_on_the_cpu_whatever_it_claims():
    """A student's function returning a generator 'on cuda' must not make the
    verifier initialize CUDA (its later sandboxes could not use the GPU)."""
    state = torch.Generator().manual_seed(3).get_state()
    codec = runner._VerifierCodec(lambda k, info: None)
    with CudaCalls() as calls:
        gen = codec.decode({runner._TAG: "gen", "state": state, "device": "cuda"})
    assert gen.device == torch.device("cpu") and calls.seen == []
    assert torch.equal(gen.get_state(), state)


@pytest.mark.slow
def test_check_never_calls_torch_cuda_in_the_command(capsys):
    """The whole `check --device auto`, in this process: the command (which
    forks the sandbox check and starts the workers) calls nothing of torch.cuda."""
    nb = ROOT / "solutions" / "gradcheck" / "gradcheck.ipynb"
    with CudaCalls() as calls:
        code = cli.main(["check", str(nb), "--device", "auto"])
    out = capsys.readouterr().out
    assert calls.seen == []
    assert code == 0, out
    assert ("Graded on the GPU" if gpu.has_gpu_files() else "Graded on the CPU") in out

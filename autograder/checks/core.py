"""Named checks with points, student-facing messages and a printable report.

A check function builds a :class:`Grader`, runs each check through
:meth:`Grader.check`, and returns ``grader.report()``::

    g = Grader("batchnorm_forward")
    g.check("output shape", 1, lambda: expect_shape(out, (4, 5), "out"))
    g.check("values vs torch", 3, lambda: expect_close(out, want, "out"), key=True)
    return g.report()

A check passes when its callable returns without raising. A :class:`Mistake`
carries a message written for the student ("running_var looks like the biased
variance: PyTorch stores the unbiased one"); any other exception is reported as
an error in the student's code, with its type and message, never a traceback of
the grader.

nbgrader zeroes a test cell that writes to stderr, so checks run with Python
warnings silenced and the report prints to stdout.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field


class Mistake(AssertionError):
    """A failed check, with a message that tells the student what to fix."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one named check.

    Attributes:
        name: what was checked, e.g. ``"dx vs torch, N=4, float64"``.
        points: the points earned (``max_points`` or 0).
        max_points: the points at stake.
        message: feedback for the student; empty when the check passed.
    """

    name: str
    points: float
    max_points: float
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.points == self.max_points


@dataclass
class Report:
    """All checks of one graded function; ``score`` is what nbgrader records."""

    title: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def score(self) -> float:
        return float(sum(r.points for r in self.results))

    @property
    def max_score(self) -> float:
        return float(sum(r.max_points for r in self.results))

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict:
        """Plain data (str, float, list) for JSON: no objects to unpickle."""
        return {
            "title": self.title,
            "score": self.score,
            "max_score": self.max_score,
            "results": [
                {
                    "name": r.name,
                    "points": r.points,
                    "max_points": r.max_points,
                    "message": r.message,
                }
                for r in self.results
            ],
        }

    def __str__(self) -> str:
        lines = [f"{self.title}: {_fmt(self.score)} / {_fmt(self.max_score)} points"]
        for r in self.results:
            mark = "PASS" if r.passed else "FAIL"
            pts = f"{_fmt(r.points)}/{_fmt(r.max_points)}"
            lines.append(f"  [{mark}] {pts:>7}  {r.name}")
            if r.message:
                for line in r.message.splitlines():
                    lines.append(f"           {line}")
        return "\n".join(lines)

    __repr__ = __str__


def _fmt(x: float) -> str:
    return f"{x:g}"


class Grader:
    """Runs named checks, each worth some points, and collects a :class:`Report`.

    Checks may depend on earlier ones: pass ``requires=["name"]`` and the check
    is skipped (0 points, with a message) when one of those failed, so a
    student is not told the same thing five times.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._results: list[CheckResult] = []
        self._keys: list[str] = []

    def check(
        self,
        name: str,
        points: float,
        fn: Callable[[], object],
        *,
        requires: list[str] | None = None,
        key: bool = False,
    ) -> bool:
        """Run ``fn()``; full points when it returns, 0 when it raises.

        Args:
            key: a *key* check compares the answer's values with the true
                function on inputs no answer can know in advance. A cell's
                other checks (shapes, dtypes, inputs unchanged, edge cases)
                count only when at least one of its key checks passed, so an
                answer that is right nowhere (zeros, a constant, the input)
                earns nothing (:meth:`report`).

        Returns:
            Whether the check passed.
        """
        if key:
            self._keys.append(name)
        failed = {r.name for r in self._results if not r.passed}
        blocked = [n for n in (requires or []) if n in failed]
        if blocked:
            msg = f"not checked because an earlier check failed: {blocked[0]}"
            self._results.append(CheckResult(name, 0.0, points, msg))
            return False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
        except Mistake as exc:
            self._results.append(CheckResult(name, 0.0, points, str(exc)))
            return False
        except NotImplementedError:
            msg = "not implemented yet (the function raised NotImplementedError)"
            self._results.append(CheckResult(name, 0.0, points, msg))
            return False
        except Exception as exc:  # student code may raise anything
            self._results.append(CheckResult(name, 0.0, points, _describe(exc)))
            return False
        self._results.append(CheckResult(name, float(points), float(points)))
        return True

    def report(self) -> Report:
        """The results; every check 0 unless a key check passed.

        Raises:
            RuntimeError: no check was marked ``key`` (a bug of the checks).
        """
        if not self._keys:
            raise RuntimeError(f"{self.title}: no check is marked key=True")
        keys = [r for r in self._results if r.name in self._keys]
        if any(r.passed for r in keys) or not keys:
            return Report(self.title, list(self._results))
        names = "; ".join(r.name for r in keys)
        gated = []
        for r in self._results:
            if r.passed:
                msg = (
                    "not counted: the values are wrong everywhere they were "
                    f"checked ({names}), and this check counts only with them"
                )
                r = CheckResult(r.name, 0.0, r.max_points, msg)
            gated.append(r)
        return Report(self.title, gated)


def _describe(exc: BaseException) -> str:
    """One line for an unexpected error: type, message and the student's line."""
    where = ""
    tb = traceback.extract_tb(exc.__traceback__)
    # the innermost frame that is not the grader's own code
    for frame in reversed(tb):
        if "autograder" not in frame.filename and "torch" not in frame.filename:
            where = f" (in {frame.name}, line {frame.lineno})"
            break
    text = str(exc).strip() or "(no message)"
    return f"your code raised {type(exc).__name__}{where}: {text}"


def finite_number(x: object) -> bool:
    """True for an int/float that is not NaN or infinite."""
    return isinstance(x, (int, float)) and math.isfinite(x)

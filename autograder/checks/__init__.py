"""Check functions called by the hidden tests of each assignment.

Each ``grade_*`` function takes the student's function(s), runs a series of
named checks, and returns a :class:`~autograder.checks.core.Report` whose
``score`` is the points earned. A hidden test cell ends with ``report.score`` so
that nbgrader reads the number as partial credit for that cell.
"""

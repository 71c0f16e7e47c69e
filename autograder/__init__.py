"""The course autograder: check functions for hidden tests and the grading command."""

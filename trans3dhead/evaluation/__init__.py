"""Evaluation: metrics on arrays, the AFLW2000-3D benchmark harness, and the validation-split
scores that training and scripts share."""

"""Dataset readers; every reader returns points in the package pixel frame."""

"""Networks: the Trans3DHead model and the 3DDFA_V2 reference."""

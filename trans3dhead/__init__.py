"""trans3dhead: 3D head alignment (68 3D landmarks, head pose, 3DMM parameters, dense mesh)."""
__version__ = "0.1.0"

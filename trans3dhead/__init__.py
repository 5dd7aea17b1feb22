"""trans3dhead: 3D head alignment (68 3D landmarks, head pose, 3DMM parameters, dense mesh).

    from trans3dhead import HeadAligner
    faces = HeadAligner()("photo.jpg")
"""
__version__ = "0.1.0"

__all__ = ["HeadAligner", "FaceResult", "Pose", "Mesh", "__version__"]


def __getattr__(name):
    # Lazy: `import trans3dhead` stays light (no torch) until the API is used.
    if name in ("HeadAligner", "FaceResult", "Pose", "Mesh"):
        from trans3dhead import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'trans3dhead' has no attribute '{name}'")

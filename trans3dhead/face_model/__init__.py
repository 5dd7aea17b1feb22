"""The 3D face model, head-pose convention and pixel frames."""
from trans3dhead.face_model.bfm import FaceModel, load_bfm_arrays
from trans3dhead.face_model.pose import euler_from_rotation, pose_deg_from_params, rotation_from_euler, split_pose

__all__ = ["FaceModel", "load_bfm_arrays", "euler_from_rotation", "pose_deg_from_params", "rotation_from_euler",
           "split_pose"]

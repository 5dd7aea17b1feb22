"""Convert 3DDFA_V2's MobileNet-0.5 checkpoint into a trans3dhead weights file (run once).

    python scripts/convert_reference.py ../shared/data/face_model/mb05_120x120.pth trans3dhead/assets/3ddfa_mb05.pt
"""
import argparse

import torch

from trans3dhead.model.reference import ReferenceMB05, convert_3ddfa_checkpoint
from trans3dhead.weights import save_weights

parser = argparse.ArgumentParser()
parser.add_argument("src")
parser.add_argument("dst")
args = parser.parse_args()
state = convert_3ddfa_checkpoint(torch.load(args.src, map_location="cpu", weights_only=False)["state_dict"])
net = ReferenceMB05()
net.load_state_dict(state, strict=True)
save_weights(args.dst, "3ddfa-mb05", {"width": 0.5, "crop_size": 120}, net.state_dict(),
             {"source": "cleardusk/3DDFA_V2 weights/mb05_120x120.pth", "licence": "MIT (LICENSE-3DDFA_V2.txt)"})
print("wrote", args.dst)

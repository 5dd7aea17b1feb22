"""Convert 3DDFA_V2's FaceBoxes checkpoint into the detector's ONNX file (run once).

    python scripts/convert_faceboxes.py CLONE/FaceBoxes/weights/FaceBoxesProd.pth trans3dhead/assets/faceboxes.onnx

CLONE is a clone of cleardusk/3DDFA_V2 (MIT; the file's sha256 is checked). The network below is
FaceBoxes as those weights were trained (Zhang et al., IJCB 2017; parameter names follow the
checkpoint, so it loads strictly). Batch norms are folded into the convolutions, the weights rounded
to float16 and stored so (about 2 MB; the graph computes in float32), and the ONNX model takes any
input size (outputs: box offsets (B, N, 4) and the face probability (B, N) per anchor, in the order
of trans3dhead/inference/detectors/faceboxes.py's ANCHOR_LAYOUT). Prints the largest change the
folding and the rounding make on a real photo.
"""
import argparse
import hashlib
import io
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trans3dhead.fileio import atomic_write_bytes, read_image_file
from trans3dhead.inference.detectors.faceboxes import PIXEL_MEAN_BGR
from trans3dhead.inference.examples import example_photo
from trans3dhead.inference.export import half_storage

SHA256 = "c0cb2b1e40710c0aa5fc32a8759b1496a0fe0a126c907ca0ffe35b4bd0709d09"  # 3DDFA_V2 at 1b6c676; another file is refused


class ConvBN(nn.Module):
    """Convolution without bias, batch norm, then ReLU, or CReLU (concat(x, -x), then ReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, crelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.crelu = crelu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(torch.cat([x, -x], 1) if self.crelu else x)

    def fold(self) -> None:
        """Fold the batch norm (eval statistics) into the convolution."""
        bn, conv = self.bn, self.conv
        gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
        folded.weight.data = conv.weight * gain[:, None, None, None]
        folded.bias.data = bn.bias - bn.running_mean * gain
        self.conv, self.bn = folded, nn.Identity()


class InceptionBlock(nn.Module):
    """128 -> 4 x 32 channels: 1x1; 3x3 average pool then 1x1; 1x1 then 3x3; 1x1 then two 3x3."""

    def __init__(self):
        super().__init__()
        self.branch1x1 = ConvBN(128, 32, 1)
        self.branch1x1_2 = ConvBN(128, 32, 1)
        self.branch3x3_reduce = ConvBN(128, 24, 1)
        self.branch3x3 = ConvBN(24, 32, 3)
        self.branch3x3_reduce_2 = ConvBN(128, 24, 1)
        self.branch3x3_2 = ConvBN(24, 32, 3)
        self.branch3x3_3 = ConvBN(32, 32, 3)

    def forward(self, x):
        pooled = F.avg_pool2d(x, 3, 1, 1)
        return torch.cat([self.branch1x1(x), self.branch1x1_2(pooled),
                          self.branch3x3(self.branch3x3_reduce(x)),
                          self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x)))], 1)


class FaceBoxesNet(nn.Module):
    """(B, 3, H, W) BGR minus the channel means -> box offsets (B, N, 4), face probability (B, N);
    detection maps at strides 32, 64 and 128 with 21, 1 and 1 anchors a cell."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBN(3, 24, 7, 4, crelu=True)
        self.conv2 = ConvBN(48, 64, 5, 2, crelu=True)
        self.inception1, self.inception2, self.inception3 = InceptionBlock(), InceptionBlock(), InceptionBlock()
        self.conv3_1, self.conv3_2 = ConvBN(128, 128, 1), ConvBN(128, 256, 3, 2)
        self.conv4_1, self.conv4_2 = ConvBN(256, 128, 1), ConvBN(128, 256, 3, 2)
        maps = ((128, 21), (256, 1), (256, 1))  # channels, anchors a cell
        self.loc = nn.Sequential(*[nn.Conv2d(c, 4 * a, 3, padding=1) for c, a in maps])
        self.conf = nn.Sequential(*[nn.Conv2d(c, 2 * a, 3, padding=1) for c, a in maps])

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 3, 2, 1)
        x = F.max_pool2d(self.conv2(x), 3, 2, 1)
        s32 = self.inception3(self.inception2(self.inception1(x)))
        s64 = self.conv3_2(self.conv3_1(s32))
        s128 = self.conv4_2(self.conv4_1(s64))
        b = x.shape[0]
        flat = lambda heads, k: torch.cat([h(m).permute(0, 2, 3, 1).reshape(b, -1, k)  # noqa: E731
                                           for h, m in zip(heads, (s32, s64, s128))], 1)
        return flat(self.loc, 4), flat(self.conf, 2).softmax(-1)[..., 1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="FaceBoxes/weights/FaceBoxesProd.pth of a 3DDFA_V2 clone")
    parser.add_argument("dst", help="the ONNX file to write")
    args = parser.parse_args(argv)
    raw = open(args.src, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    if SHA256 and digest != SHA256:
        raise SystemExit(f"{args.src}: sha256 {digest}, expected {SHA256} (3DDFA_V2's FaceBoxesProd.pth)")
    net = FaceBoxesNet().eval()
    net.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True), strict=True)

    img = read_image_file(example_photo()).astype(np.float32) - np.array(PIXEL_MEAN_BGR, np.float32)
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        before = net(x)
        for m in net.modules():
            if isinstance(m, ConvBN):
                m.fold()
        for p in net.parameters():
            p.data = p.data.half().float()
        after = net(x)
    print(f"sha256 {digest}; folding + float16 weights change the box offsets by at most "
          f"{(before[0] - after[0]).abs().max():.2e} and the face probabilities by {(before[1] - after[1]).abs().max():.2e}")
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["loc", "score"], do_constant_folding=False,
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                        "loc": {0: "batch", 1: "anchors"}, "score": {0: "batch", 1: "anchors"}})
    data = half_storage(buf.getvalue())
    atomic_write_bytes(args.dst, data)
    print(f"wrote {args.dst} ({len(data)} bytes)")


if __name__ == "__main__":
    main()

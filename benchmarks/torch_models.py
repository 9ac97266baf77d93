"""PyTorch twins of onnx_models' graphs, for the PyTorch-eager side of the benchmarks:
``resnet`` builds, with torch.nn modules, the network that ``onnx_models.resnet`` writes
as ONNX for the same arguments (torchvision's BasicBlock: Conv2d without bias,
BatchNorm2d, ReLU, residual add, 1x1 conv + BN downsample). Imported only in a worker
process that has torch; torch is never a dependency of the project."""
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet(blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), classes=1000, stem="imagenet"):
    if stem == "imagenet":
        layers = [nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
    else:   # "cifar": one 3x3 stride-1 conv, no max-pool
        layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for stage, (n, cout) in enumerate(zip(blocks, widths)):
        for b in range(n):
            layers.append(BasicBlock(cin, cout, 2 if (b == 0 and stage > 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)

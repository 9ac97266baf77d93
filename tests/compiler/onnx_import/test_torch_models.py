"""PyTorch-exported models train one SGD step exactly as PyTorch does: a ResNet-style
CNN, a MobileNetV3-style block (HardSwish, depthwise conv, squeeze-excite), a 2-layer
TransformerEncoder and an LSTM. Optional: skipped without torch (never a dependency)."""
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from symgrad.compiler import from_onnx, optimizers  # noqa: E402
from symgrad.runtime import Trainer  # noqa: E402

import onnx  # noqa: E402


def _export(model, x):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.EVAL, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=17)
    return onnx.load_from_string(buf.getvalue())


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.conv3, self.bn3 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16)
        self.pool, self.fc = nn.MaxPool2d(2, ceil_mode=True), nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(x + self.bn2(self.conv2(x)))
        x = torch.relu(self.down(x) + self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.pool(x), 1), 1))


class MobileBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand, self.bn1 = nn.Conv2d(4, 12, 1, bias=False), nn.BatchNorm2d(12)
        self.dw, self.bn2 = nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False), nn.BatchNorm2d(12)
        self.se1, self.se2 = nn.Conv2d(12, 4, 1), nn.Conv2d(4, 12, 1)
        self.project, self.bn3 = nn.Conv2d(12, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = nn.functional.hardswish(self.bn1(self.expand(x)))
        h = nn.functional.hardswish(self.bn2(self.dw(h)))
        s = nn.functional.hardsigmoid(self.se2(torch.relu(self.se1(nn.functional.adaptive_avg_pool2d(h, 1)))))
        h = x + self.bn3(self.project(h * s))
        return self.fc(h.mean(dim=(2, 3)))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        return self.enc(x)


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def _randomize(model, gen):
    """Distinct random values everywhere (deep-copied layers would otherwise be tied by
    the exporter) and non-trivial batch-norm statistics."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


CASES = {
    "resnet_cnn": (ResNetish, (3, 9, 9)),
    "mobilenetv3_block": (MobileBlock, (4, 6, 6)),
    "transformer_encoder": (Encoder, (5, 8)),
    "lstm": (LSTMNet, (6, 4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_sgd_step_equals_pytorch(case):
    build, shape = CASES[case]
    gen = torch.Generator().manual_seed(0)
    model = build()   # float32: onnxruntime has no double Conv kernel
    _randomize(model, gen)
    model.eval()
    x = torch.randn((4,) + shape, generator=gen, dtype=torch.float32)
    with torch.no_grad():
        y = torch.randn(model(x).shape, generator=gen, dtype=torch.float32)
    exported = _export(model, x)
    lr = 0.1
    program = from_onnx(exported, loss="mse", optimizer=optimizers.SGD(lr))
    trainer = Trainer(program)
    names = dict(model.named_parameters())
    shared = [w.name for w in program.weights if w.name in names]
    assert len(shared) == len([w for w in program.weights if w.trainable]), \
        f"trainable weights not named like PyTorch's: {[w.name for w in program.weights]}"
    trainer.set_weights([names[n].detach().numpy() if n in names else dict(model.named_buffers())[n].numpy()
                         for n in trainer.weight_names])
    ours = trainer.train_on_batch(x.numpy(), y.numpy(), return_dict=True)["loss"]

    loss = nn.functional.mse_loss(model(x), y)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    assert ours == pytest.approx(loss.item(), rel=1e-5)
    after = dict(zip(trainer.weight_names, trainer.get_weights()))
    for n in shared:
        np.testing.assert_allclose(after[n], names[n].detach().numpy(), rtol=1e-4, atol=1e-6, err_msg=n)

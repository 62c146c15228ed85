"""Training throughput (images/s) of stylecbn's Keras trainer against PyTorch, same run.

Both sides train the same network (Johnson et al. with conditional instance normalization,
as stylecbn.model.network builds it) with the same loss (VGG-16 to relu4_3: content at relu3_3,
Gram style loss at relu1_2..relu4_3, Caffe preprocessing), Adam, random style labels, on
random 256 px crops. The VGG weights are random: throughput does not depend on their values.
The Keras side is stylecbn's own StyleTrainer (Keras `fit` machinery, via `train_on_batch`);
the PyTorch side is a plain eager loop (optionally channels-last / bf16 autocast on CUDA).

    python benchmarks/train_throughput.py                     # Keras on TensorFlow, CPU
    python benchmarks/train_throughput.py --backend jax       # Keras on JAX (GPU machine)
    python benchmarks/train_throughput.py --batch 16 --steps 20 --precision mixed_bfloat16

PyTorch is optional (never a dependency): without it the PyTorch column is skipped.
"""

import argparse
import os
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--styles", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    return parser.parse_args()


ARGS = parse_args()
os.environ["KERAS_BACKEND"] = ARGS.backend
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
VGG_BLOCKS = [(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3)]


def random_vgg_arrays(seed=0):
    """He-initialized VGG-16 kernels/biases to block4_conv3 (HWIO), shared by both sides."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for block, (cin, cout, count) in enumerate(VGG_BLOCKS, start=1):
        for index in range(count):
            c_in = cin if index == 0 else cout
            kernel = rng.normal(0, np.sqrt(2 / (9 * c_in)), (3, 3, c_in, cout)).astype(np.float32)
            arrays[f"block{block}_conv{index + 1}"] = (kernel, np.zeros(cout, np.float32))
    return arrays


def data(steps, batch, size, styles, seed=0):
    rng = np.random.default_rng(seed)
    # uint8 pixels, as ContentPhotos.batch gives them (the Keras trainer scales them to [0, 1]).
    images = rng.integers(0, 256, (steps, batch, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, styles, (steps, batch)).astype(np.int32)
    return images, labels


# ----------------------------------------------------------------------------- Keras


def keras_images_per_second(arrays):
    import keras

    from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
    from stylecbn.model.network import build_network
    from stylecbn.training.trainer import StyleTrainer
    from stylecbn.perceptual.vgg import build_loss_network

    keras.config.set_dtype_policy(ARGS.precision)
    # A compact .npz of the random arrays, so the real loader builds the real loss network.
    import tempfile

    from stylecbn.perceptual.vgg import COMPACT_FORMAT

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "random_vgg.npz")
        payload = {"format": np.array(COMPACT_FORMAT), "description": np.array("random")}
        for name, (kernel, bias) in arrays.items():
            payload[f"{name}/kernel"] = kernel.astype(np.float16)
            payload[f"{name}/bias"] = bias.astype(np.float16)
        np.savez(path, **payload)
        loss_network, _ = build_loss_network(path, LAYERS)
    weights = LossWeights()
    style_images = [np.random.default_rng(i).random((256, 256, 3)).astype(np.float32)
                    for i in range(ARGS.styles)]
    grams = compute_style_grams(loss_network, style_images, weights.style_layers)
    network = build_network(ARGS.styles)
    trainer = StyleTrainer(network, PerceptualLoss(loss_network, weights, grams,
                                                   [1.0] * ARGS.styles))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    images, labels = data(ARGS.warmup + ARGS.steps, ARGS.batch, ARGS.size, ARGS.styles)
    for step in range(ARGS.warmup + ARGS.steps):
        if step == ARGS.warmup:
            start = time.perf_counter()
        logs = trainer.train_on_batch({"images": images[step], "style": labels[step]},
                                      return_dict=True)
    float(logs["total_loss"])  # wait for the last step
    return ARGS.steps * ARGS.batch / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- PyTorch


def torch_images_per_second(arrays):
    import torch
    import torch.nn.functional as F
    from torch import nn

    device = "cuda" if torch.cuda.is_available() else "cpu"
    autocast = ARGS.precision == "mixed_bfloat16"
    torch.manual_seed(0)

    class CondInstanceNorm(nn.Module):
        def __init__(self, styles, channels):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(styles, channels))
            self.beta = nn.Parameter(torch.zeros(styles, channels))

        def forward(self, x, labels):
            x = x.float()
            mean = x.mean(dim=(2, 3), keepdim=True)
            var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
            x = (x - mean) * torch.rsqrt(var + 1e-3)
            return x * self.gamma[labels][:, :, None, None] + self.beta[labels][:, :, None, None]

    def conv(cin, cout, k, stride=1):
        return nn.Conv2d(cin, cout, k, stride=stride, bias=False)

    class Residual(nn.Module):
        def __init__(self, styles, channels):
            super().__init__()
            self.conv_1, self.conv_2 = conv(channels, channels, 3), conv(channels, channels, 3)
            self.norm_1 = CondInstanceNorm(styles, channels)
            self.norm_2 = CondInstanceNorm(styles, channels)

        def forward(self, x, labels):
            y = F.relu(self.norm_1(self.conv_1(F.pad(x, (1,) * 4, mode="reflect")), labels))
            y = self.norm_2(self.conv_2(F.pad(y, (1,) * 4, mode="reflect")), labels)
            return x + y

    class Network(nn.Module):
        def __init__(self, styles):
            super().__init__()
            self.down = nn.ModuleList([conv(3, 32, 9), conv(32, 64, 3, 2), conv(64, 128, 3, 2)])
            self.down_norms = nn.ModuleList([CondInstanceNorm(styles, c) for c in (32, 64, 128)])
            self.blocks = nn.ModuleList([Residual(styles, 128) for _ in range(5)])
            self.up = nn.ModuleList([conv(128, 64, 3), conv(64, 32, 3)])
            self.up_norms = nn.ModuleList([CondInstanceNorm(styles, c) for c in (64, 32)])
            self.out = conv(32, 3, 9)
            self.out_norm = CondInstanceNorm(styles, 3)

        def forward(self, x, labels):
            for layer, norm in zip(self.down, self.down_norms):
                pad = layer.kernel_size[0] // 2
                x = F.relu(norm(layer(F.pad(x, (pad,) * 4, mode="reflect")), labels))
            for block in self.blocks:
                x = block(x, labels)
            for layer, norm in zip(self.up, self.up_norms):
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                x = F.relu(norm(layer(F.pad(x, (1,) * 4, mode="reflect")), labels))
            return torch.sigmoid(self.out_norm(self.out(F.pad(x, (4,) * 4, mode="reflect")), labels))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.names = list(arrays)
            self.convs = nn.ModuleList()
            for name in self.names:
                kernel, bias = arrays[name]
                layer = nn.Conv2d(kernel.shape[2], kernel.shape[3], 3, padding=1)
                layer.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
                layer.bias.data = torch.from_numpy(bias.copy())
                self.convs.append(layer)
            self.register_buffer("mean", torch.tensor([103.939, 116.779, 123.68])[None, :, None, None])
            self.requires_grad_(False)

        def forward(self, x):
            x = x.flip(1) * 255 - self.mean
            features = {}
            for name, layer in zip(self.names, self.convs):
                if name.endswith("_conv1") and name != "block1_conv1":
                    x = F.max_pool2d(x, 2)
                x = F.relu(layer(x))
                if name in LAYERS:
                    features[name] = x
            return features

    def gram(f):
        b, c, h, w = f.shape
        f = f.float().reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (h * w)

    network, vgg = Network(ARGS.styles).to(device), VGG().to(device)
    if device == "cuda":
        network = network.to(memory_format=torch.channels_last)
        vgg = vgg.to(memory_format=torch.channels_last)
    with torch.no_grad():
        grams = {name: [] for name in LAYERS}
        for i in range(ARGS.styles):
            style = torch.from_numpy(np.random.default_rng(i).random((1, 256, 256, 3), np.float32))
            features = vgg(style.permute(0, 3, 1, 2).to(device))
            for name in LAYERS:
                grams[name].append(gram(features[name])[0])
        grams = {name: torch.stack(v) for name, v in grams.items()}
    optimizer = torch.optim.Adam(network.parameters(), 1e-3)
    images, labels = data(ARGS.warmup + ARGS.steps, ARGS.batch, ARGS.size, ARGS.styles)
    images = torch.from_numpy(images.astype(np.float32) / 255).permute(0, 1, 4, 2, 3).contiguous()
    labels = torch.from_numpy(labels).long()

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            stylized = network(x, y)
            features = vgg(torch.cat([stylized, x]))
        batch = x.shape[0]
        content = F.mse_loss(features["block3_conv3"][:batch].float(),
                             features["block3_conv3"][batch:].float())
        style = sum(((gram(features[n][:batch]) - grams[n][y]) ** 2).mean() for n in LAYERS)
        loss = content + 1e-3 * style
        loss.backward()
        optimizer.step()
        return loss

    for i in range(ARGS.warmup + ARGS.steps):
        if i == ARGS.warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = images[i].to(device), labels[i].to(device)
        if device == "cuda":
            x = x.to(memory_format=torch.channels_last)
        loss = step(x, y)
    loss.item()
    return ARGS.steps * ARGS.batch / (time.perf_counter() - start), device


def main():
    arrays = random_vgg_arrays()
    keras_ips = keras_images_per_second(arrays)
    print(f"setup: batch {ARGS.batch}, {ARGS.size} px, {ARGS.styles} styles, {ARGS.precision}, "
          f"{ARGS.warmup} warm-up + {ARGS.steps} timed steps, random VGG-16 weights")
    print(f"Keras 3 ({ARGS.backend}): {keras_ips:.2f} img/s")
    if ARGS.no_torch:
        return
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch: skipped (torch is not installed; `pip install torch` for this column)")
        return
    torch_ips, device = torch_images_per_second(arrays)
    print(f"PyTorch {torch.__version__} (eager, {device}): {torch_ips:.2f} img/s")
    print(f"ratio Keras/PyTorch: {keras_ips / torch_ips:.2f}")


if __name__ == "__main__":
    main()

"""Reference timings of GAN-EM's MNIST networks (Table 4) in PyTorch on the CPU.

Mirrors what `bench-step` times in ganem, with the same networks, losses (BCE generator loss,
extra unit weight 2) and optimiser (Adam), and prints a JSON object {row: median ms}.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(n, width):
    return max(1, round(n * width))


class Classifier(nn.Module):
    def __init__(self, outputs, width):
        super().__init__()
        c = [scaled(x, width) for x in (64, 128, 256)]
        layers, prev = [], 1
        for ch in c:
            layers += [nn.Conv2d(prev, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2)]
            prev = ch
        self.trunk = nn.Sequential(*layers)
        hidden = scaled(1024, width)
        self.fc = nn.Sequential(nn.Linear(prev * 9, hidden, bias=False), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.head(self.fc(self.trunk(x).flatten(1)))


class Generator(nn.Module):
    def __init__(self, k, width, fc_hidden):
        super().__init__()
        self.base = scaled(128, width)
        mid = scaled(64, width)
        layers, inputs = [], 62 + k
        if fc_hidden:
            hidden = scaled(fc_hidden, width)
            layers += [nn.Linear(inputs, hidden, bias=False), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)]
            inputs = hidden
        layers += [nn.Linear(inputs, self.base * 49, bias=False), nn.BatchNorm1d(self.base * 49), nn.LeakyReLU(0.2)]
        self.fc = nn.Sequential(*layers)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(self.base, mid, 4, 2, 1, bias=False), nn.BatchNorm2d(mid), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(mid, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, self.base, 7, 7))


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--generator-fc-hidden", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inference-images", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    k = 10
    g, d, e = Generator(k, args.width, args.generator_fc_hidden), Classifier(k + 1, args.width), Classifier(k, args.width)
    opt = lambda m, lr: torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g, opt_d, opt_e = opt(g, 6e-4), opt(d, 2e-4), opt(e, 6e-5)

    def gen_input(b):
        c = torch.randint(0, k, (b,))
        return torch.cat([torch.rand(b, 62), F.one_hot(c, k).float()], 1), c

    real = torch.rand(64, 1, 28, 28)
    w = torch.full((64, k), 1.0 / k)

    def gan_iteration():
        z, c = gen_input(64)
        fake = g(z)
        rl, fl = d(real), d(fake.detach())
        ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
        loss_d = (F.binary_cross_entropy_with_logits(rl[:, :k], torch.ones(64, k), weight=w, reduction="sum") / 64
                  + F.binary_cross_entropy_with_logits(fl[:, :k], torch.zeros(64, k), reduction="sum") / 64
                  + 2 * (F.binary_cross_entropy_with_logits(rl[:, k:], ones) + F.binary_cross_entropy_with_logits(fl[:, k:], zeros)))
        opt_d.zero_grad(); loss_d.backward(); opt_d.step()
        gl = d(fake)
        target = torch.cat([F.one_hot(c, k).float(), ones], 1)
        loss_g = F.binary_cross_entropy_with_logits(gl, target, reduction="sum") / 64
        opt_g.zero_grad(); loss_g.backward(); opt_g.step()

    def enet_iteration(b):
        def run():
            z, c = gen_input(b)
            with torch.no_grad():
                x = g(z)
            loss = F.cross_entropy(e(x), c)
            opt_e.zero_grad(); loss.backward(); opt_e.step()
        return run

    images = torch.rand(args.inference_images, 1, 28, 28)

    def inference():
        e.eval()
        with torch.no_grad():
            for s in range(0, len(images), 1000):
                torch.softmax(e(images[s:s + 1000]), 1)
        e.train()

    out = {
        "gan_iteration_b64": median_ms(gan_iteration, args.repeats),
        "enet_iteration_b64": median_ms(enet_iteration(64), args.repeats),
        "enet_iteration_b256": median_ms(enet_iteration(256), args.repeats),
        "inference_10k": median_ms(inference, min(args.repeats, 2)),
        "torch_version": torch.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

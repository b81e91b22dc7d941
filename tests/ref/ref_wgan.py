"""ref_wgan.py: PyTorch and Python references for the WGAN model (tests/test_wgan.c).

1. Losses and gradients on the same weights and batch:
   critic  E D(fake) - E D(real)                       (WGAN, Arjovsky et al. 2017)
   critic  the same + lambda * mean((||dD/dxhat|| - 1)^2), the input gradient from
           torch.autograd.grad(create_graph=True), as gan_toy.py / WGAN-GP eq. 3
   generator  -E D(G(z)) with the critic frozen (requires_grad False)
2. The toy datasets of gan_toy.py (8gaussians, 25gaussians, swissroll via sklearn's
   make_swiss_roll), transcribed from it line by line with numpy's stream replaced
   by a Python transcription of cliplab's PCG32 (src/engine/rng.c), so the C
   generators can be held against the reference code's own structure.
"""
import math

import numpy as np
import torch

from tfile import out_path, save

out = {}

# ------------------------------------------------------------ 1. parity
torch.manual_seed(0)


def mlp(i, width, depth, o):
    layers = []
    for l in range(depth):
        layers += [torch.nn.Linear(i if l == 0 else width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, o))
    return torch.nn.Sequential(*layers)


def linears(net):
    return [m for m in net if isinstance(m, torch.nn.Linear)]


for tag, width, depth, B, NZ in (("a", 16, 3, 8, 2), ("b", 8, 6, 5, 3)):
    G, D = mlp(NZ, width, depth, 2), mlp(2, width, depth, 1)
    with torch.no_grad():  # weights of the size a trained critic has, so GP is not trivial
        for m in linears(D):
            m.weight.mul_(2.0)
    real = torch.randn(B, 2)
    noise = torch.randn(B, NZ)
    alpha = torch.rand(B)
    for net, name in ((G, "gen"), (D, "critic")):
        for l, m in enumerate(linears(net)):
            out[f"{tag}.{name}.w{l}"] = m.weight
            out[f"{tag}.{name}.b{l}"] = m.bias
    out[f"{tag}.real"], out[f"{tag}.noise"], out[f"{tag}.alpha"] = real, noise, alpha
    with torch.no_grad():
        fake = G(noise)
    out[f"{tag}.fake"] = fake
    for lam in (0.0, 10.0):
        D.zero_grad()
        loss = D(fake).mean() - D(real).mean()
        xhat = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(D(xhat).sum(), xhat, create_graph=True)
        slopes = grad.norm(2, dim=1)
        gp = ((slopes - 1) ** 2).mean()
        if lam > 0:
            loss = loss + lam * gp
        loss.backward()
        k = f"{tag}.lam{int(lam)}"
        out[k + ".loss"] = loss.detach().reshape(1)
        out[k + ".gp"] = gp.detach().reshape(1)
        out[k + ".slope"] = slopes.detach().mean().reshape(1)
        for l, m in enumerate(linears(D)):
            out[f"{k}.grad.w{l}"] = m.weight.grad.clone()
            out[f"{k}.grad.b{l}"] = m.bias.grad.clone()
    # generator step: the critic frozen, as main.py's p.requires_grad = False
    for p in D.parameters():
        p.requires_grad_(False)
    G.zero_grad()
    gloss = -D(G(noise)).mean()
    gloss.backward()
    out[f"{tag}.gloss"] = gloss.detach().reshape(1)
    for l, m in enumerate(linears(G)):
        out[f"{tag}.ggrad.w{l}"] = m.weight.grad
        out[f"{tag}.ggrad.b{l}"] = m.bias.grad

# ------------------------------------------------------------ ops alone
# gradient penalty on g[7,3]: value and d/dg; relu_grad = ReLU's backward as an op:
# torch.autograd.grad of relu(z) with grad_outputs g and create_graph=True,
# then its gradient w.r.t. g for a projection R (z gets none)
g = (torch.randn(7, 3) * 0.8).requires_grad_(True)
pen = ((g.norm(2, dim=1) - 1) ** 2).mean()
pen.backward()
out["op.gp.g"], out["op.gp.value"], out["op.gp.grad"] = g.detach(), pen.detach().reshape(1), g.grad
z = torch.randn(6, 5).requires_grad_(True)
gg = torch.randn(6, 5).requires_grad_(True)
rg, = torch.autograd.grad(torch.relu(z), z, grad_outputs=gg, create_graph=True)
R = torch.randn(6, 5)
dz, dg = torch.autograd.grad((rg * R).sum(), (z, gg), allow_unused=True)
out["op.rg.z"], out["op.rg.g"], out["op.rg.R"] = z.detach(), gg.detach(), R
out["op.rg.out"], out["op.rg.dg"] = rg.detach(), dg
out["op.rg.dz_is_none"] = np.array([1 if dz is None else 0], dtype=np.int32)
if dz is not None:
    out["op.rg.dz"] = dz

# ------------------------------------------------------------ 2. datasets
M64 = (1 << 64) - 1


class Pcg32:
    """src/engine/rng.c: PCG32 XSH RR, 53-bit uniforms, Box-Muller with a spare."""

    def __init__(self, seed, stream):
        self.state, self.inc, self.spare = 0, ((stream << 1) | 1) & M64, None
        self.u32()
        self.state = (self.state + seed) & M64
        self.u32()

    def u32(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & M64
        xs = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xs >> rot) | (xs << ((-rot) & 31))) & 0xFFFFFFFF

    def uniform(self):
        hi, lo = self.u32() >> 5, self.u32() >> 6
        return (hi * 67108864.0 + lo) / 9007199254740992.0

    def normal(self):
        if self.spare is not None:
            v, self.spare = self.spare, None
            return v
        u1 = self.uniform()
        while u1 <= 0.0:
            u1 = self.uniform()
        u2 = self.uniform()
        rad, th = math.sqrt(-2.0 * math.log(u1)), 2.0 * math.pi * u2
        self.spare = rad * math.sin(th)
        return rad * math.cos(th)

    def below(self, bound):
        threshold = ((1 << 32) - bound) % bound
        while True:
            x = self.u32()
            if x >= threshold:
                return x % bound

    # numpy / random stand-ins used by gan_toy.py
    def randn(self, n):
        return np.array([self.normal() for _ in range(n)])

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def shuffle(self, a):  # np.random.shuffle: Fisher-Yates from the end
        for i in range(len(a) - 1, 0, -1):
            j = self.below(i + 1)
            a[[i, j]] = a[[j, i]]


def gen_8gaussians(rng, batch, nbatches):
    scale = 2.
    centers = [(1, 0), (-1, 0), (0, 1), (0, -1), (1. / np.sqrt(2), 1. / np.sqrt(2)),
               (1. / np.sqrt(2), -1. / np.sqrt(2)), (-1. / np.sqrt(2), 1. / np.sqrt(2)),
               (-1. / np.sqrt(2), -1. / np.sqrt(2))]
    centers = [(scale * x, scale * y) for x, y in centers]
    for _ in range(nbatches):
        dataset = []
        for i in range(batch):
            point = rng.randn(2) * .02
            center = rng.choice(centers)
            point[0] += center[0]
            point[1] += center[1]
            dataset.append(point)
        dataset = np.array(dataset, dtype='float32')
        dataset /= np.float32(1.414)
        yield dataset


def gen_25gaussians(rng, size, batch, nbatches):
    dataset = []
    for i in range(size // 25):
        for x in range(-2, 3):
            for y in range(-2, 3):
                point = rng.randn(2) * 0.05
                point[0] += 2 * x
                point[1] += 2 * y
                dataset.append(point)
    dataset = np.array(dataset, dtype='float32')
    rng.shuffle(dataset)
    dataset /= np.float32(2.828)
    k = 0
    while True:
        for i in range(len(dataset) // batch):
            if k == nbatches:
                return
            k += 1
            yield dataset[i * batch:(i + 1) * batch]


def make_swiss_roll(rng, n_samples, noise):  # sklearn.datasets.make_swiss_roll, hole=False
    t = 1.5 * np.pi * (1 + 2 * np.array([rng.uniform() for _ in range(n_samples)]))
    y = 21 * np.array([rng.uniform() for _ in range(n_samples)])
    x = t * np.cos(t)
    z = t * np.sin(t)
    X = np.vstack((x, y, z))
    X += noise * np.array([[rng.normal() for _ in range(n_samples)] for _ in range(3)])
    return X.T, t


def gen_swissroll(rng, batch, nbatches):
    for _ in range(nbatches):
        data = make_swiss_roll(rng, batch, 0.25)[0]
        data = data.astype('float32')[:, [0, 2]]
        data /= np.float32(7.5)
        yield data


out["data.8gaussians"] = np.concatenate(list(gen_8gaussians(Pcg32(5, 3), 64, 2)))
out["data.25gaussians"] = np.concatenate(list(gen_25gaussians(Pcg32(5, 3), 1000, 256, 5)))
out["data.swissroll"] = np.concatenate(list(gen_swissroll(Pcg32(5, 3), 64, 2)))
save(out_path(__file__), out)

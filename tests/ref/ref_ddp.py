"""ref_ddp.py: PyTorch DistributedDataParallel on the CPU (gloo backend, 2
processes, a file:// rendezvous) for tests/test_ddp.c: a small MLP trained 4
steps with clip_grad_norm_ AFTER DDP's all-reduce, as the torch docs recipe
does (loss.backward() all-reduces the mean; then clip; then step).

Network: Linear(4, 8) - tanh - Linear(8, 1), MSE loss, SGD lr 0.1 momentum 0.9,
clip_grad_norm_(max_norm 0.5): big enough targets that the clip bites on every
step. Rank r's batch of step s is x[s, r] (8 examples); one process with both
batches would be the same run. Saves the initial weights, the data, the
total norm clip_grad_norm_ returned at each step, and the weights after the
last step (rank 0's; DDP keeps the ranks equal, which the script checks).
"""
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tfile import out_path, save

STEPS, RANKS, B = 4, 2, 8


def make():
    g = torch.Generator().manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(STEPS, RANKS, B, 4, generator=g)
    y = 3.0 * torch.randn(STEPS, RANKS, B, 1, generator=g)
    return net, x, y


def worker(rank, store, queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=RANKS)
    net, x, y = make()
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    norms = []
    for s in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(x[s, rank]), y[s, rank])
        loss.backward()  # DDP: the gradients are now the mean over the ranks
        norms.append(float(torch.nn.utils.clip_grad_norm_(ddp.parameters(), 0.5)))
        opt.step()
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    queue.put((rank, flat.numpy().copy(), norms))
    dist.destroy_process_group()


def main():
    store = os.path.join(tempfile.mkdtemp(), "rendezvous")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, store, queue)) for r in range(RANKS)]
    for p in procs:
        p.start()
    got = dict((r, (w, n)) for r, w, n in (queue.get(timeout=300) for _ in procs))
    for p in procs:
        p.join()
        assert p.exitcode == 0, "a DDP process failed"
    assert (got[0][0] == got[1][0]).all(), "DDP ranks disagree"
    net, x, y = make()
    w0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    save(out_path(__file__), {
        "w0": w0, "x": x, "y": y,
        "norms@f64": torch.tensor(got[0][1], dtype=torch.float64),
        "w_final": torch.tensor(got[0][0]),
    })


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()

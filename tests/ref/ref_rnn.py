"""ref_rnn.py: PyTorch reference for the full RNN forward + backward (tests/test_rnn.c).

torch.nn.RNN (tanh) over x[T,B,I], a Linear head on the last hidden state,
MSE loss (adding) or cross-entropy (temporal order); identical weights and
inputs are saved with the loss and every parameter gradient.
"""
import numpy as np
import torch

from tfile import out_path, save

torch.manual_seed(0)
rng = np.random.default_rng(0)
out = {}
for task, I, O in (("adding", 2, 1), ("order", 6, 4)):
    T, B, H = 20, 4, 16
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh")
    head = torch.nn.Linear(H, O)
    with torch.no_grad():  # a recurrent matrix large enough for big gradients
        rnn.weight_hh_l0.mul_(3.0)
    x = torch.tensor(rng.uniform(0, 1, (T, B, I)), dtype=torch.float32)
    hs, _ = rnn(x)
    pred = head(hs[-1])
    if task == "adding":
        y = torch.tensor(rng.uniform(0, 2, (B, 1)), dtype=torch.float32)
        loss = torch.nn.functional.mse_loss(pred, y)
        out[task + ".y"] = y
    else:
        cls = torch.tensor(rng.integers(0, O, B), dtype=torch.int64)
        loss = torch.nn.functional.cross_entropy(pred, cls)
        out[task + ".cls"] = cls.numpy().astype(np.int32)
    loss.backward()
    out[task + ".x"] = x
    out[task + ".loss"] = loss.detach().reshape(1)
    params = {"w_ih": rnn.weight_ih_l0, "b_ih": rnn.bias_ih_l0, "w_hh": rnn.weight_hh_l0,
              "b_hh": rnn.bias_hh_l0, "w_out": head.weight, "b_out": head.bias}
    for name, p in params.items():
        out[task + "." + name] = p.detach()
        out[task + ".grad." + name] = p.grad
save(out_path(__file__), out)

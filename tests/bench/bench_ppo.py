"""bench_ppo.py: one PPO update, ours vs PyTorch, same shapes, one thread.

Update = CleanRL's cleanrl/ppo.py optimisation phase on CartPole: 4 epochs,
each a shuffle of the 512-sample batch into 4 minibatches of 128; per
minibatch the Agent's actor and critic (4 -> 64 tanh -> 64 tanh -> 2 / 1),
log-prob, entropy, ratio, normalised advantages, clipped surrogate, clipped
value loss, backward, clip_grad_norm_(0.5), Adam (lr 2.5e-4, eps 1e-5).
Both sides: one thread (OPENBLAS_NUM_THREADS=1 from `make bench`,
torch.set_num_threads(1)), median of many updates after a warm-up, the two
sides interleaved in rounds.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from torch.distributions.categorical import Categorical

from benchlib import interleaved, thread_scaling, threads_line

REPS, WARM, ROUNDS = 20, 3, 5
B, M, EPOCHS, CLIP = 512, 128, 4, 0.2
torch.set_num_threads(1)
torch.manual_seed(0)
rng = np.random.default_rng(0)


def layer_init(layer, std=np.sqrt(2)):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, 0.0)
    return layer


class Agent(nn.Module):
    def __init__(self):
        super().__init__()
        self.critic = nn.Sequential(layer_init(nn.Linear(4, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)),
                                    nn.Tanh(), layer_init(nn.Linear(64, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(4, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)),
                                   nn.Tanh(), layer_init(nn.Linear(64, 2), std=0.01))

    def get_action_and_value(self, x, action):
        probs = Categorical(logits=self.actor(x))
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


agent = Agent()
optimizer = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)
b_obs = torch.tensor(rng.normal(0, 0.1, (B, 4)), dtype=torch.float32)
b_actions = torch.tensor(rng.integers(0, 2, B))
b_logprobs = torch.tensor(np.log(0.5) + rng.normal(0, 0.05, B), dtype=torch.float32)
b_values = torch.tensor(rng.normal(0, 1, B), dtype=torch.float32)
b_returns = b_values + torch.tensor(rng.normal(0, 1, B), dtype=torch.float32)
b_advantages = torch.tensor(rng.normal(0, 1, B), dtype=torch.float32)
b_inds = np.arange(B)

binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_ppo")


def torch_update():
    for _ in range(EPOCHS):
        np.random.shuffle(b_inds)
        for start in range(0, B, M):
            mb = b_inds[start:start + M]
            _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
            logratio = newlogprob - b_logprobs[mb]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()  # noqa: F841 (CleanRL logs it)
                clipfrac = ((ratio - 1.0).abs() > CLIP).float().mean().item()  # noqa: F841
            adv = b_advantages[mb]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - CLIP, 1 + CLIP)).mean()
            newvalue = newvalue.view(-1)
            v_unclipped = (newvalue - b_returns[mb]) ** 2
            v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -CLIP, CLIP)
            v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()
            loss = pg_loss - 0.01 * entropy.mean() + 0.5 * v_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            optimizer.step()


torch_ms, c, ratios = interleaved(torch_update, binary, ROUNDS, REPS, WARM)
c_ms = c["c_step_ms"]
print(f"ppo update (4 epochs x 4 minibatches of 128, actor+critic 64-64, Adam, clip 0.5, 1 thread): "
      f"cliplab {c_ms:.3f} ms, pytorch {torch_ms:.3f} ms, speed-up x{torch_ms / c_ms:.2f} "
      f"(target >= 3; per-round x{ratios[0]:.2f}..x{ratios[-1]:.2f})")
one, two = thread_scaling(binary, REPS, ROUNDS)
print(threads_line("  ppo update", one, two, "none set"), flush=True)

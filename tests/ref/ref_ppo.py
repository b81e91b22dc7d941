"""ref_ppo.py: PyTorch references for the PPO agent (tests/test_ppo.c).

1. The minibatch loss of CleanRL's cleanrl/ppo.py and every parameter
   gradient, on its Agent (separate actor / critic, 64-64 tanh, layer_init
   orthogonal), float64, for two settings: "clip" (clip_coef 0.2, clip_vloss,
   norm_adv) and "noclip" (clip_coef inf, no value clip, norm_adv). The old
   log-probabilities and values are the new ones plus noise, so the ratio
   leaves [0.8, 1.2] and V - V_old leaves [-0.2, 0.2] on some samples and
   not on others (asserted below), so both clipped and unclipped branches
   carry gradient. The actor head uses gain 0.5 instead of CleanRL's 0.01 so
   its gradients are not tiny.
2. One whole update, CleanRL's optimisation phase: 4 epochs x 4 minibatches
   of 128 from a batch of 512, Adam (lr 2.5e-4, eps 1e-5), clip_grad_norm_(0.5)
   (acting on every minibatch, asserted), with the minibatch orders saved;
   the weights after it.
3. GAE over a rollout with episode ends, CleanRL's loop, float64.
4. explained_variance as CleanRL computes it (np.var).
"""
import numpy as np
import torch
import torch.nn as nn
from torch.distributions.categorical import Categorical

from tfile import out_path, save

torch.manual_seed(0)
rng = np.random.default_rng(0)
torch.set_default_dtype(torch.float64)


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, H=64):
        super().__init__()
        self.critic = nn.Sequential(layer_init(nn.Linear(4, H)), nn.Tanh(), layer_init(nn.Linear(H, H)),
                                    nn.Tanh(), layer_init(nn.Linear(H, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(4, H)), nn.Tanh(), layer_init(nn.Linear(H, H)),
                                   nn.Tanh(), layer_init(nn.Linear(H, 2), std=0.5))

    def get_action_and_value(self, x, action):
        probs = Categorical(logits=self.actor(x))
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def f32(a):  # inputs exactly representable in the C side's float32
    return torch.tensor(np.asarray(a, dtype=np.float32), dtype=torch.float64)


out = {}
M = 128
agent = Agent()
with torch.no_grad():  # weights rounded to float32 so both sides start equal
    for p in agent.parameters():
        p.copy_(p.to(torch.float32).to(torch.float64))
for name, p in agent.named_parameters():
    out["w." + name] = p.detach()

obs = f32(rng.normal(0, 1, (M, 4)) * np.array([0.5, 0.5, 0.1, 0.5]))
act = torch.tensor(rng.integers(0, 2, M))
with torch.no_grad():
    _, lp_now, _, v_now = agent.get_action_and_value(obs, act)
logp_old = f32(lp_now.numpy() + rng.normal(0, 0.25, M))
val_old = f32(v_now.view(-1).numpy() + rng.normal(0, 0.3, M))
ret = f32(v_now.view(-1).numpy() + rng.normal(0, 1.0, M))
adv = f32(rng.normal(0.3, 1.5, M))
out.update({"obs": obs, "act": act.numpy().astype(np.int32), "logp_old": logp_old,
            "val_old": val_old, "ret": ret, "adv": adv})

for case, clip_coef, clip_vloss in (("clip", 0.2, True), ("noclip", float("inf"), False)):
    ent_coef, vf_coef = 0.01, 0.5
    agent.zero_grad()
    # --- CleanRL's minibatch update, verbatim in structure ---
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(obs, act)
    logratio = newlogprob - logp_old
    ratio = logratio.exp()
    with torch.no_grad():
        old_approx_kl = (-logratio).mean()
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    mb_advantages = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
    newvalue = newvalue.view(-1)
    if clip_vloss:
        v_loss_unclipped = (newvalue - ret) ** 2
        v_clipped = val_old + torch.clamp(newvalue - val_old, -clip_coef, clip_coef)
        v_loss_clipped = (v_clipped - ret) ** 2
        v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
        vfrac = ((newvalue - val_old).abs() > clip_coef).double().mean().item()
        assert 0.2 < vfrac < 0.8, "value clipping active on %.2f of the samples" % vfrac
    else:
        v_loss = 0.5 * ((newvalue - ret) ** 2).mean()
    entropy_loss = entropy.mean()
    loss = pg_loss - ent_coef * entropy_loss + v_loss * vf_coef
    loss.backward()
    if clip_vloss:
        assert 0.2 < clipfrac.item() < 0.8, "ratio clipping active on %.2f" % clipfrac.item()
    for k, v in (("loss", loss), ("pg_loss", pg_loss), ("v_loss", v_loss), ("entropy", entropy_loss),
                 ("approx_kl", approx_kl), ("old_approx_kl", old_approx_kl), ("clipfrac", clipfrac)):
        out[case + "." + k] = v.detach().reshape(1)
    for name, p in agent.named_parameters():
        out[case + ".grad." + name] = p.grad.clone()

# --- one full update (CleanRL's optimisation phase): 4 epochs x 4 minibatches of
# 128 from a batch of 512, Adam(lr 2.5e-4, eps 1e-5), clip_grad_norm_(0.5), with the
# minibatch orders saved so the C side follows them ---
B, MB, EPOCHS, CLIP = 512, 128, 4, 0.2
upd = Agent()
with torch.no_grad():
    for p, q in zip(upd.parameters(), agent.parameters()):
        p.copy_(q)
optimizer = torch.optim.Adam(upd.parameters(), lr=2.5e-4, eps=1e-5)
b_obs = f32(rng.normal(0, 1, (B, 4)) * np.array([0.5, 0.5, 0.1, 0.5]))
b_actions = torch.tensor(rng.integers(0, 2, B))
with torch.no_grad():
    _, lp0, _, v0 = upd.get_action_and_value(b_obs, b_actions)
b_logprobs = f32(lp0.numpy() + rng.normal(0, 0.05, B))
b_values = f32(v0.view(-1).numpy() + rng.normal(0, 0.1, B))
b_returns = f32(b_values.numpy() + rng.normal(3.0, 5.0, B))  # CartPole's early critic error
b_advantages = f32(rng.normal(0, 1.0, B))
orders = np.stack([rng.permutation(B) for _ in range(EPOCHS)]).astype(np.int32)
norms = []
for epoch in range(EPOCHS):
    for start in range(0, B, MB):
        mb_inds = orders[epoch, start:start + MB]
        _, newlogprob, entropy, newvalue = upd.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
        logratio = newlogprob - b_logprobs[mb_inds]
        ratio = logratio.exp()
        mb_adv = b_advantages[mb_inds]
        mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
        pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - CLIP, 1 + CLIP)).mean()
        newvalue = newvalue.view(-1)
        v_unclipped = (newvalue - b_returns[mb_inds]) ** 2
        v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -CLIP, CLIP)
        v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb_inds]) ** 2).mean()
        loss = pg_loss - 0.01 * entropy.mean() + v_loss * 0.5
        optimizer.zero_grad()
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(upd.parameters(), 0.5).item())
        optimizer.step()
assert min(norms) > 0.5, "the clip must act on every update here: %s" % norms
out.update({"upd.obs": b_obs, "upd.act": b_actions.numpy().astype(np.int32), "upd.logp": b_logprobs,
            "upd.val": b_values, "upd.ret": b_returns, "upd.adv": b_advantages, "upd.orders": orders,
            "upd.loss": loss.detach().reshape(1)})
for name, p in upd.named_parameters():
    out["upd.w." + name] = p.detach()

# --- GAE (CleanRL's loop), T steps x N envs ---
T, N, gamma, lam = 16, 3, 0.99, 0.95
rewards = np.ones((T, N))
values = rng.normal(5, 3, (T, N)).astype(np.float32).astype(np.float64)
dones = (rng.uniform(0, 1, (T, N)) < 0.15).astype(np.float64)
next_value = rng.normal(5, 3, N).astype(np.float32).astype(np.float64)
next_done = np.array([0.0, 1.0, 0.0])
advantages = np.zeros((T, N))
lastgaelam = 0
for t in reversed(range(T)):
    if t == T - 1:
        nextnonterminal = 1.0 - next_done
        nextvalues = next_value
    else:
        nextnonterminal = 1.0 - dones[t + 1]
        nextvalues = values[t + 1]
    delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
    advantages[t] = lastgaelam = delta + gamma * lam * nextnonterminal * lastgaelam
returns = advantages + values
assert dones.sum() >= 3
var_y = np.var(returns)
out.update({"gae.rewards": rewards, "gae.values": values, "gae.dones": dones,
            "gae.next_value": next_value, "gae.next_done": next_done,
            "gae.adv@f64": advantages, "gae.ret@f64": returns,
            "gae.ev@f64": np.array([1 - np.var(returns - values) / var_y])})
save(out_path(__file__), out)

"""ref_cartpole.py: Gymnasium's CartPole-v1 step, transcribed, over random actions (tests/test_cartpole.c).

The equations, constants and termination test are those of
gymnasium/envs/classic_control/cartpole.py (CartPoleEnv.step, explicit Euler):
the state is a tuple of Python floats (float64), as there. Episodes start
from U(-0.05, 0.05)^4 like reset(); actions are uniform random. Saved per
episode: the start state, the actions, every state after a step (float64),
and the step at which the episode terminated.
"""
import math

import numpy as np

from tfile import out_path, save

gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
total_mass = masspole + masscart
polemass_length = masspole * length
theta_threshold_radians = 12 * 2 * math.pi / 360
x_threshold = 2.4


def step(state, action):
    x, x_dot, theta, theta_dot = state
    force = force_mag if action == 1 else -force_mag
    costheta = math.cos(theta)
    sintheta = math.sin(theta)
    temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
    thetaacc = (gravity * sintheta - costheta * temp) / (
        length * (4.0 / 3.0 - masspole * costheta**2 / total_mass))
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    x = x + tau * x_dot
    x_dot = x_dot + tau * xacc
    theta = theta + tau * theta_dot
    theta_dot = theta_dot + tau * thetaacc
    state = (x, x_dot, theta, theta_dot)
    terminated = bool(x < -x_threshold or x > x_threshold
                      or theta < -theta_threshold_radians or theta > theta_threshold_radians)
    return state, terminated


rng = np.random.default_rng(0)
E, MAXLEN = 64, 200
starts = rng.uniform(-0.05, 0.05, (E, 4))
actions = rng.integers(0, 2, (E, MAXLEN)).astype(np.int32)
states = np.zeros((E, MAXLEN, 4))
ends = np.zeros(E, dtype=np.int32)
for e in range(E):
    s = tuple(float(v) for v in starts[e])
    for t in range(MAXLEN):
        s, term = step(s, int(actions[e, t]))
        states[e, t] = s
        if term:
            ends[e] = t + 1
            break
    assert ends[e] > 0, "a random-action episode outlived %d steps" % MAXLEN
save(out_path(__file__), {"starts@f64": starts, "actions": actions, "states@f64": states,
                          "ends": ends})

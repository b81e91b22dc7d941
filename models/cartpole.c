/* cartpole.c: Gymnasium's CartPole-v1 dynamics and a vector of N environments
 * with auto-reset and per-episode statistics (see cartpole.h). The equations
 * are those of Florian (2007), "Correct equations for the dynamics of the
 * cart-pole system", with Gymnasium's constants and its explicit Euler step;
 * tests/ref/ref_cartpole.py transcribes Gymnasium's step for the test. */
#include "cartpole.h"

#include <math.h>
#include <string.h>

#include "common.h"

static const double GRAVITY = 9.8, MASSCART = 1.0, MASSPOLE = 0.1, LENGTH = 0.5;
static const double FORCE_MAG = 10.0, TAU = 0.02;

int cartpole_step_state(double *s, int action) {
    const double total_mass = MASSPOLE + MASSCART, polemass_length = MASSPOLE * LENGTH;
    double x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
    double force = action == 1 ? FORCE_MAG : -FORCE_MAG;
    double costheta = cos(theta), sintheta = sin(theta);
    double temp = (force + polemass_length * theta_dot * theta_dot * sintheta) / total_mass;
    double thetaacc = (GRAVITY * sintheta - costheta * temp) /
                      (LENGTH * (4.0 / 3.0 - MASSPOLE * costheta * costheta / total_mass));
    double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
    /* kinematics_integrator = "euler": positions move with the old velocities */
    s[0] = x + TAU * x_dot;
    s[1] = x_dot + TAU * xacc;
    s[2] = theta + TAU * theta_dot;
    s[3] = theta_dot + TAU * thetaacc;
    return s[0] < -CARTPOLE_X_THRESHOLD || s[0] > CARTPOLE_X_THRESHOLD ||
           s[2] < -CARTPOLE_THETA_THRESHOLD || s[2] > CARTPOLE_THETA_THRESHOLD;
}

void cartpole_reset_state(double *s, Rng *r) {
    for (int k = 0; k < CARTPOLE_OBS; k++) s[k] = -0.05 + 0.1 * rng_uniform(r);
}

void cartpole_vec_init(CartPoleVec *v, int n, int max_steps, uint64_t seed) {
    ASSERT(n > 0 && max_steps > 0, "cartpole: %d environments, %d steps", n, max_steps);
    v->n = n;
    v->max_steps = max_steps;
    v->state = xmalloc((size_t)n * CARTPOLE_OBS * sizeof *v->state);
    v->len = xcalloc((size_t)n, sizeof *v->len);
    v->ret = xcalloc((size_t)n, sizeof *v->ret);
    rng_seed(&v->rng, seed, 17);
    for (int i = 0; i < n; i++) cartpole_reset_state(v->state + (size_t)i * CARTPOLE_OBS, &v->rng);
}

void cartpole_vec_free(CartPoleVec *v) {
    free(v->state), free(v->len), free(v->ret);
    memset(v, 0, sizeof *v);
}

void cartpole_vec_obs(const CartPoleVec *v, float *obs) {
    for (size_t i = 0; i < (size_t)v->n * CARTPOLE_OBS; i++) obs[i] = (float)v->state[i];
}

int cartpole_vec_step_range(CartPoleVec *v, int lo, int hi, const int *actions, float *reward,
                            float *done, double *ep_return, int *ep_length) {
    int ended = 0;
    for (int i = lo; i < hi; i++) {
        double *s = v->state + (size_t)i * CARTPOLE_OBS;
        ASSERT(actions[i] == 0 || actions[i] == 1, "cartpole: action %d", actions[i]);
        int terminated = cartpole_step_state(s, actions[i]);
        v->len[i]++;
        v->ret[i] += 1.0;
        reward[i] = 1.0f;
        int truncated = v->len[i] >= v->max_steps;
        done[i] = (float)(terminated || truncated);
        ep_length[i] = 0;
        if (terminated || truncated) {
            ep_return[i] = v->ret[i];
            ep_length[i] = v->len[i];
            v->len[i] = 0;
            v->ret[i] = 0.0;
            ended++;
        }
    }
    return ended;
}

void cartpole_vec_reset_ended(CartPoleVec *v, const float *done, int lo, int hi) {
    for (int i = 0; i < v->n; i++) {
        if (done[i] == 0.0f) continue;
        double skip[CARTPOLE_OBS]; /* another rank's environment: the same draws, dropped */
        cartpole_reset_state(i >= lo && i < hi ? v->state + (size_t)i * CARTPOLE_OBS : skip, &v->rng);
    }
}

int cartpole_vec_step(CartPoleVec *v, const int *actions, float *reward, float *done,
                      double *ep_return, int *ep_length) {
    /* stepping an environment never reads the reset stream, so stepping all
     * of them first and then resetting the ended ones in order is the same as
     * resetting each as it ends */
    int ended = cartpole_vec_step_range(v, 0, v->n, actions, reward, done, ep_return, ep_length);
    cartpole_vec_reset_ended(v, done, 0, v->n);
    return ended;
}

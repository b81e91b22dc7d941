/* cartpole.h: CartPole-v1 in C, as Gymnasium defines it
 * (gymnasium/envs/classic_control/cartpole.py, after Barto, Sutton & Anderson
 * 1983), and N copies stepped together with auto-reset (gym's SyncVectorEnv +
 * RecordEpisodeStatistics, as CleanRL's ppo.py uses them).
 *
 * State s = (x, x_dot, theta, theta_dot), kept in double as Gymnasium keeps
 * it (Python floats); observations are float32 copies, as Gymnasium returns.
 * Constants: g 9.8, masscart 1.0, masspole 0.1, half length 0.5, force 10,
 * tau 0.02, explicit Euler. Termination: |x| > 2.4 or |theta| > 12 degrees.
 * Reward 1 every step (the terminating one included). Truncation after
 * max_steps (500 for v1). Reset: every state component ~ U(-0.05, 0.05).
 *
 * Dimension legend: N environments, 4 observation components. */
#ifndef CLIPLAB_MODELS_CARTPOLE_H
#define CLIPLAB_MODELS_CARTPOLE_H

#include "rng.h"

#define CARTPOLE_OBS 4
#define CARTPOLE_ACTIONS 2
#define CARTPOLE_MAX_STEPS 500          /* CartPole-v1's TimeLimit */
#define CARTPOLE_SOLVED 475.0           /* v1's reward threshold */
#define CARTPOLE_X_THRESHOLD 2.4
#define CARTPOLE_THETA_THRESHOLD (12.0 * 2.0 * 3.14159265358979323846 / 360.0)

/* One explicit-Euler step of s[4] under action 0 (push left) or 1 (push
 * right), in place; returns 1 if the new state is terminal. */
int cartpole_step_state(double *s, int action);
/* s[4] ~ U(-0.05, 0.05) each (np_random.uniform(low=-0.05, high=0.05, size=4)). */
void cartpole_reset_state(double *s, Rng *r);

typedef struct CartPoleVec {
    int n, max_steps;
    double *state;          /* [N,4] */
    int *len;               /* [N] steps in the current episode */
    double *ret;            /* [N] return of the current episode */
    Rng rng;                /* the resets' own stream */
} CartPoleVec;

/* N environments, each reset; max_steps = truncation length. */
void cartpole_vec_init(CartPoleVec *v, int n, int max_steps, uint64_t seed);
void cartpole_vec_free(CartPoleVec *v);
/* obs[N,4] = float32 of the current states. */
void cartpole_vec_obs(const CartPoleVec *v, float *obs);
/* Step every environment with actions[N]; reward[N] = 1; done[N] = 1 where the
 * episode ended (terminated or truncated, as gym's old done = terminated or
 * TimeLimit). An environment that ended is reset at once, so the next
 * cartpole_vec_obs() shows its new first observation (SyncVectorEnv
 * auto-reset). For an ended episode ep_return[i] / ep_length[i] get its
 * return and length, else ep_length[i] = 0. Returns how many ended. */
int cartpole_vec_step(CartPoleVec *v, const int *actions, float *reward, float *done,
                      double *ep_return, int *ep_length);
/* The two halves of cartpole_vec_step, for environments split over ranks
 * (PPO under mpirun): step environments lo .. hi-1 only (an ended episode's
 * counters are recorded and cleared, its state is not reset yet); then, with
 * done[N] of ALL environments, reset the ended ones of lo .. hi-1 from the
 * reset stream, drawing (and dropping) the same numbers for the ended ones
 * outside it, in environment order: the stream advances as one process's. */
int cartpole_vec_step_range(CartPoleVec *v, int lo, int hi, const int *actions, float *reward,
                            float *done, double *ep_return, int *ep_length);
void cartpole_vec_reset_ended(CartPoleVec *v, const float *done, int lo, int hi);

#endif

/* ppo.h: Proximal Policy Optimization (Schulman et al. 2017) on CartPole-v1,
 * as CleanRL's cleanrl/ppo.py does it, so its numbers can be checked against
 * the implementation every RL student reads.
 *
 * Agent: separate actor and critic MLPs obs[4] -> 64 tanh -> 64 tanh -> head
 * (actor: 2 logits of a categorical policy; critic: 1 value), orthogonal
 * weights (gain sqrt 2; actor head 0.01, critic head 1), zero biases, all in
 * one ParamSet "agent": one Adam and one global gradient clip over actor and
 * critic together, as CleanRL's optim.Adam(agent.parameters()) and
 * clip_grad_norm_(agent.parameters(), 0.5).
 *
 * One trainer step = one PPO iteration: a no-grad rollout of num_steps steps
 * in num_envs environments, GAE (Schulman et al. 2016, eq. 16), then
 * update_epochs passes over the batch in shuffled minibatches, one optimizer
 * update per minibatch: one trainer_step() on the group "agent" (the shared
 * pipeline; [clip] or [clip.agent] is the gradient clip).
 *
 * Minibatch loss (CleanRL; PPO paper eq. 7 and 9, signs for minimising):
 *   r      = exp(log pi(a|s) - log pi_old(a|s))
 *   A      = (A - mean A) / (std A + 1e-8)               (norm_adv, per minibatch)
 *   L_pg   = mean(max(-A r, -A clip(r, 1 - eps, 1 + eps)))  (eps = [ppo] ratio_clip; inf: -A r)
 *   L_v    = 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))
 *            (clip_vloss; else 0.5 mean((V - R)^2))
 *   L      = L_pg - ent_coef mean(H(pi)) + vf_coef L_v
 *   approx_kl = mean((r - 1) - log r) (k3 estimator), old_approx_kl = mean(-log r),
 *   clipfrac = mean(|r - 1| > eps).
 *
 * Dimension legend: T rollout steps, N environments, B = T*N batch, M minibatch,
 * O = 4 observation components, A = 2 actions, H hidden units. */
#ifndef CLIPLAB_MODELS_PPO_H
#define CLIPLAB_MODELS_PPO_H

#include "cartpole.h"
#include "model.h"
#include "params.h"
#include "rng.h"

typedef struct PpoConfig {
    int num_envs;           /* N */
    int num_steps;          /* T per rollout */
    double gamma, gae_lambda;
    int num_minibatches, update_epochs;
    int norm_adv;
    double clip_coef;       /* INFINITY = the unclipped surrogate */
    int clip_vloss;
    double ent_coef, vf_coef;
    double target_kl;       /* INFINITY = never stop early (CleanRL's None) */
    int hidden;             /* H */
    int max_episode_steps;  /* truncation (500 for CartPole-v1) */
    int eval_episodes;      /* fresh episodes of the final policy, printed at the end */
} PpoConfig;

extern const ModelDef ppo_model;

/* What one minibatch's loss measured (CleanRL's logged quantities). */
typedef struct PpoStats {
    double pg_loss, v_loss, entropy, approx_kl, old_approx_kl, clipfrac;
} PpoStats;

/* One minibatch, as raw arrays of M rows. */
typedef struct PpoBatch {
    int M;
    const float *obs;       /* [M,O] */
    const int *act;         /* [M] */
    const float *logp_old;  /* [M] log pi_old(a|s) at rollout time */
    const float *adv;       /* [M] GAE advantages (normalised inside if norm_adv) */
    const float *ret;       /* [M] returns = advantages + values */
    const float *val_old;   /* [M] values at rollout time */
    int adv_normalised;     /* adv already normalised over the whole minibatch (micro-batches) */
} PpoBatch;

typedef struct Ppo {
    PpoConfig cfg;
    ParamSet ps;            /* "agent": actor and critic */
    Tensor *actor[6], *critic[6];  /* w0 b0 w1 b1 w2 b2 (torch: actor.0, actor.2, actor.4) */
    CartPoleVec env;
    /* rollout storage, [T,N] (obs [T,N,O]); b_* flatten as index t*N + n */
    float *obs, *logp, *rew, *done, *val, *adv, *ret;
    int *act;
    float *next_obs, *next_done;   /* [N,O], [N] */
    int *inds;              /* [B] shuffled minibatch order */
    float *mb;              /* minibatch gather buffer */
    int *mb_act;
    double *ep_ret;         /* [N] scratch for finished episodes */
    int *ep_len;
    double recent[100];     /* returns of the last 100 training episodes (ring) */
    long episodes;
    long solved_step;       /* first global step where the last-100 mean >= 475, or -1 */
    int col[11];            /* metric columns */
    float *init_params;     /* the untrained agent (ps.n values), for episode.png */
    double *micro_stats;    /* [K][6]: each micro-batch's PpoStats (K = trainer_micro_batches) */
    double *xchg;           /* [3 (N + N/R)]: a rollout step's exchange over R ranks */
} Ppo;

/* Declare, allocate and initialise the agent's parameters (no trainer needed). */
void ppo_build(Ppo *m, const PpoConfig *cfg, Rng *init_rng);
void ppo_free_params(Ppo *m);
/* logits[M,A] of the actor and values[M,1] of the critic on obs[M,O]. */
Tensor *ppo_actor(Ppo *m, Ctx *c, Tensor *obs);
Tensor *ppo_critic(Ppo *m, Ctx *c, Tensor *obs);
/* The minibatch loss L above, recorded on c; st (may be NULL) gets the stats. */
Tensor *ppo_loss_on(Ppo *m, Ctx *c, const PpoBatch *b, PpoStats *st);
/* The optimisation phase of one PPO iteration on the batch in m's buffers
 * (obs, act, logp, adv, ret, val; B = num_envs * num_steps rows):
 * update_epochs passes, each num_minibatches trainer_step()s on the group
 * "agent" in the order given (order: update_epochs x B row indices; NULL =
 * shuffled from tr->rng), stopping after an epoch whose last approx_kl
 * exceeds target_kl. Returns the last minibatch's loss; *last gets its
 * stats, *clipfrac the mean clipfrac over the minibatches (as CleanRL logs). */
double ppo_update(Ppo *m, Trainer *tr, const int *order, PpoStats *last, double *clipfrac);
/* GAE over a rollout of T steps in N environments (CleanRL's loop):
 * delta_t = r_t + gamma V_{t+1} (1 - d_{t+1}) - V_t,
 * A_t = delta_t + gamma lambda (1 - d_{t+1}) A_{t+1}, R_t = A_t + V_t,
 * where d_t says the observation at t began a new episode and step T uses
 * next_value / next_done. adv, ret [T,N] out; rew, val, done [T,N]; next_* [N]. */
void ppo_gae(float *adv, float *ret, const float *rew, const float *val, const float *done,
             const float *next_value, const float *next_done, int T, int N, double gamma,
             double lambda);
/* 1 - Var(y - pred) / Var(y) (population variances), NaN if Var(y) = 0. */
double ppo_explained_variance(const float *pred, const float *y, int n);
/* Mean return of `episodes` fresh episodes (one per environment, run together)
 * with actions sampled from the policy; r draws resets and actions. */
double ppo_evaluate(Ppo *m, Ctx *c, int episodes, uint64_t seed, double *min_ret, double *max_ret);

#endif

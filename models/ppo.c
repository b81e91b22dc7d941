/* ppo.c: the PPO agent of ppo.h, its [ppo] section, rollouts, GAE, the
 * clipped-surrogate minibatch loss and the update loop.
 *
 * Ratio clipping is the clipping this model shows: with ratio_clip = eps the
 * surrogate stops rewarding a move of the probability ratio beyond 1 +- eps
 * (its gradient is zero there), so several epochs over one batch cannot push
 * the policy far from the one that collected it (PPO paper, section 3). With
 * ratio_clip = inf the objective is the plain importance-sampled policy
 * gradient and nothing holds the policy back. The global gradient-norm clip
 * (CleanRL's max_grad_norm 0.5) is the shared pipeline's [clip]. */
#include "ppo.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "ops.h"
#include "plot.h"
#include "train.h"

/* ------------------------------------------------------------------ config */

#define PPO_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(PpoConfig, f), d, lo, hi, NULL, h}
static const CfgKey ppo_keys[] = {
    PPO_KEY("num_envs", CFG_INT, num_envs, "4", 1, 4096, "parallel CartPole environments N"),
    PPO_KEY("num_steps", CFG_INT, num_steps, "128", 1, 1000000,
            "steps per environment per rollout T (batch = N*T)"),
    PPO_KEY("gamma", CFG_DOUBLE, gamma, "0.99", 0, 1, "discount factor"),
    PPO_KEY("gae_lambda", CFG_DOUBLE, gae_lambda, "0.95", 0, 1, "GAE lambda"),
    PPO_KEY("num_minibatches", CFG_INT, num_minibatches, "4", 1, 1000000,
            "minibatches per epoch (must divide N*T)"),
    PPO_KEY("update_epochs", CFG_INT, update_epochs, "4", 1, 10000,
            "passes K over each batch"),
    PPO_KEY("norm_adv", CFG_BOOL, norm_adv, "true", 0, 1,
            "normalise advantages per minibatch: (A - mean) / (std + 1e-8)"),
    PPO_KEY("ratio_clip", CFG_NORM, clip_coef, "0.2", 0, 1e6,
            "surrogate clipping eps: ratio clipped to [1-eps, 1+eps]; inf = unclipped"),
    PPO_KEY("clip_vloss", CFG_BOOL, clip_vloss, "true", 0, 1,
            "clip the value update to V_old +- ratio_clip (max of clipped and unclipped loss)"),
    PPO_KEY("ent_coef", CFG_DOUBLE, ent_coef, "0.01", 0, 100, "entropy bonus coefficient"),
    PPO_KEY("vf_coef", CFG_DOUBLE, vf_coef, "0.5", 0, 100, "value loss coefficient"),
    PPO_KEY("target_kl", CFG_NORM, target_kl, "inf", 0, 1e6,
            "stop the epochs of an update once approx_kl exceeds this; inf = never"),
    PPO_KEY("hidden", CFG_INT, hidden, "64", 1, 4096, "hidden units H of actor and critic"),
    PPO_KEY("max_episode_steps", CFG_INT, max_episode_steps, "500", 1, 100000000,
            "truncate episodes at this length (CartPole-v1: 500)"),
    PPO_KEY("eval_episodes", CFG_INT, eval_episodes, "100", 0, 100000,
            "fresh episodes of the final policy whose mean return is printed (0 = none)"),
};
static const CfgSection ppo_section = {
    "ppo", ppo_keys, (int)(sizeof ppo_keys / sizeof *ppo_keys),
    "PPO on CartPole-v1 (CleanRL ppo.py defaults); [optim] and [clip] are the update's", NULL};

/* ------------------------------------------------------------------ agent */

static const char *const layer_names[6] = {"0.weight", "0.bias", "2.weight",
                                           "2.bias",   "4.weight", "4.bias"};

/* obs -> H tanh -> H tanh -> out; w[6] as torch's nn.Sequential indices 0, 2, 4. */
static void declare_mlp(ParamSet *ps, const char *net, Tensor **w, int H, int out) {
    int shapes[6][2] = {{H, CARTPOLE_OBS}, {H, 0}, {H, H}, {H, 0}, {out, H}, {out, 0}};
    for (int i = 0; i < 6; i++) {
        char name[PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s.%s", net, layer_names[i]);
        int bias = i % 2;
        w[i] = param_add(ps, name, bias ? 1 : 2, bias ? (int[]){shapes[i][0]} : shapes[i], !bias);
    }
}

/* CleanRL's layer_init: orthogonal_(weight, std), bias = 0. */
static void init_mlp(Tensor **w, Rng *r, float head_gain) {
    param_init_orthogonal(w[0], r, sqrtf(2.0f));
    param_init_orthogonal(w[2], r, sqrtf(2.0f));
    param_init_orthogonal(w[4], r, head_gain);
    param_init_const(w[1], 0.0f), param_init_const(w[3], 0.0f), param_init_const(w[5], 0.0f);
}

void ppo_build(Ppo *m, const PpoConfig *cfg, Rng *init_rng) {
    m->cfg = *cfg;
    param_set_init(&m->ps, "agent", 12);
    /* critic first: the order of CleanRL's agent.parameters() */
    declare_mlp(&m->ps, "critic", m->critic, cfg->hidden, 1);
    declare_mlp(&m->ps, "actor", m->actor, cfg->hidden, CARTPOLE_ACTIONS);
    param_alloc(&m->ps);
    init_mlp(m->critic, init_rng, 1.0f);
    init_mlp(m->actor, init_rng, 0.01f);
}

void ppo_free_params(Ppo *m) { param_set_free(&m->ps); }

static Tensor *mlp(Ctx *c, Tensor *x, Tensor *const *w) {
    Tensor *h = ad_tanh(c, ad_linear(c, x, w[0], w[1]));
    h = ad_tanh(c, ad_linear(c, h, w[2], w[3]));
    return ad_linear(c, h, w[4], w[5]);
}

Tensor *ppo_actor(Ppo *m, Ctx *c, Tensor *obs) { return mlp(c, obs, m->actor); }
Tensor *ppo_critic(Ppo *m, Ctx *c, Tensor *obs) { return mlp(c, obs, m->critic); }

/* ------------------------------------------------------------------ loss */

/* (A - mean) / (std + 1e-8), std with Bessel's correction (torch.std). */
static void normalise(float *out, const float *a, int n) {
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mean += a[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (a[i] - mean) * (a[i] - mean);
    double sd = n > 1 ? sqrt(var / (n - 1)) : NAN; /* torch: std of one sample is NaN */
    for (int i = 0; i < n; i++) out[i] = (float)((a[i] - mean) / (sd + 1e-8));
}

/* max(a, b) = -min(-a, -b) */
static Tensor *maximum(Ctx *c, Tensor *a, Tensor *b) {
    return ad_scale(c, ad_minimum(c, ad_scale(c, a, -1.0f), ad_scale(c, b, -1.0f)), -1.0f);
}

static Tensor *square(Ctx *c, Tensor *x) { return ad_mul(c, x, x); }

Tensor *ppo_loss_on(Ppo *m, Ctx *c, const PpoBatch *b, PpoStats *st) {
    const PpoConfig *cfg = &m->cfg;
    int M = b->M;
    float eps = (float)cfg->clip_coef;
    Tensor *X = tensor_from(c, 2, (int[]){M, CARTPOLE_OBS}, b->obs);
    /* policy: log pi(a|s), entropy -sum p log p */
    Tensor *logp_all = ad_log_softmax(c, ppo_actor(m, c, X));
    Tensor *logp = ad_gather(c, logp_all, b->act);
    Tensor *ent = ad_scale(c, ad_mean(c, ad_mul(c, ad_exp(c, logp_all), logp_all)),
                           -(float)CARTPOLE_ACTIONS); /* mean over M*A, times A = row sum */
    Tensor *logratio = ad_sub(c, logp, tensor_from(c, 1, &M, b->logp_old));
    Tensor *ratio = ad_exp(c, logratio);
    float *adv = arena_alloc(&c->arena, (size_t)M * sizeof *adv);
    if (cfg->norm_adv && !b->adv_normalised)
        normalise(adv, b->adv, M);
    else
        memcpy(adv, b->adv, (size_t)M * sizeof *adv);
    Tensor *A = tensor_from(c, 1, &M, adv);
    /* clipped surrogate, PPO eq. 7: max(-A r, -A clip(r)) = -min(A r, A clip(r)) */
    Tensor *surr = ad_mul(c, ratio, A);
    if (isfinite(cfg->clip_coef))
        surr = ad_minimum(c, surr, ad_mul(c, ad_clamp(c, ratio, 1.0f - eps, 1.0f + eps), A));
    Tensor *pg = ad_scale(c, ad_mean(c, surr), -1.0f);
    /* value loss */
    Tensor *v = ad_reshape(c, ppo_critic(m, c, X), 1, &M);
    Tensor *R = tensor_from(c, 1, &M, b->ret);
    Tensor *vl = square(c, ad_sub(c, v, R));
    if (cfg->clip_vloss) {
        Tensor *V0 = tensor_from(c, 1, &M, b->val_old);
        Tensor *vc = ad_add(c, V0, ad_clamp(c, ad_sub(c, v, V0), -eps, eps));
        vl = maximum(c, vl, square(c, ad_sub(c, vc, R)));
    }
    Tensor *vloss = ad_scale(c, ad_mean(c, vl), 0.5f);
    Tensor *loss = ad_add(c, ad_sub(c, pg, ad_scale(c, ent, (float)cfg->ent_coef)),
                          ad_scale(c, vloss, (float)cfg->vf_coef));
    if (st) {
        double okl = 0.0, kl = 0.0, cf = 0.0;
        for (int i = 0; i < M; i++) {
            /* k3 = (r - 1) - log r >= 0, as expm1 in double: float32's (r - 1) - log r
             * rounds to small negatives once the policy has stopped moving */
            double lr = logratio->data[i], r = ratio->data[i];
            okl += -lr;
            kl += expm1(lr) - lr;
            cf += fabs(r - 1.0) > cfg->clip_coef;
        }
        *st = (PpoStats){pg->data[0], vloss->data[0], ent->data[0], kl / M, okl / M, cf / M};
    }
    return loss;
}

/* ------------------------------------------------------------------ GAE */

void ppo_gae(float *adv, float *ret, const float *rew, const float *val, const float *done,
             const float *next_value, const float *next_done, int T, int N, double gamma,
             double lambda) {
    float g = (float)gamma, gl = (float)(gamma * lambda);
    for (int n = 0; n < N; n++) {
        float last = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)t * N + n;
            float nonterminal = 1.0f - (t == T - 1 ? next_done[n] : done[i + N]);
            float nextv = t == T - 1 ? next_value[n] : val[i + N];
            float delta = rew[i] + g * nextv * nonterminal - val[i];
            adv[i] = last = delta + gl * nonterminal * last;
            ret[i] = adv[i] + val[i];
        }
    }
}

double ppo_explained_variance(const float *pred, const float *y, int n) {
    double my = 0.0, md = 0.0;
    for (int i = 0; i < n; i++) my += y[i], md += y[i] - pred[i];
    my /= n, md /= n;
    double vy = 0.0, vd = 0.0;
    for (int i = 0; i < n; i++) {
        double d = y[i] - pred[i] - md;
        vy += (y[i] - my) * (y[i] - my);
        vd += d * d;
    }
    return vy == 0.0 ? NAN : 1.0 - vd / vy;
}

/* ------------------------------------------------------------------ acting */

/* Sample a ~ Categorical(softmax(logits)) for rows lo .. hi-1 of N; logp
 * gets log pi(a|s). logits [hi-lo,2] (rows lo .. hi-1), act and logp [N].
 * One number of r per row of all N, in order, so a rank sampling its own
 * block of rows leaves r where one process would. */
static void sample_actions(int *act, float *logp, const float *logits, int lo, int hi, int N,
                           Rng *r) {
    for (int n = 0; n < N; n++) {
        if (n < lo || n >= hi) {
            (void)rng_uniform(r);
            continue;
        }
        const float *l = logits + 2 * (size_t)(n - lo);
        double l0 = l[0], l1 = l[1], mx = l0 > l1 ? l0 : l1;
        double lse = mx + log(exp(l0 - mx) + exp(l1 - mx));
        double p0 = exp(l0 - lse);
        act[n] = rng_uniform(r) < p0 ? 0 : 1;
        logp[n] = (float)((act[n] ? l1 : l0) - lse);
    }
}

/* This rank's environments lo .. hi-1: rank r of R steps num_envs / R of them
 * (all of them on one process). */
static void env_block(const Ppo *m, int *lo, int *hi) {
    int nb = m->cfg.num_envs / dist_size();
    *lo = dist_rank() * nb, *hi = *lo + nb;
}

/* Every rank's block of columns lo .. hi-1 of x[T,N,k] to every rank (scratch
 * mine[T*nb*k], all[T*N*k], nb = N/R), so x is whole on every rank. */
static void gather_columns(float *x, int T, int N, int k, double *mine, double *all) {
    int R = dist_size(), nb = N / R, lo = dist_rank() * nb;
    size_t w = (size_t)nb * k; /* one rank's part of a row */
    for (int t = 0; t < T; t++)
        for (size_t j = 0; j < w; j++) mine[(size_t)t * w + j] = x[((size_t)t * N + lo) * k + j];
    dist_allgather_doubles(all, mine, (int)((size_t)T * w));
    for (int q = 0; q < R; q++)
        for (int t = 0; t < T; t++)
            for (size_t j = 0; j < w; j++)
                x[((size_t)t * N + (size_t)q * nb) * k + j] = (float)all[((size_t)q * T + t) * w + j];
}

/* One no-grad rollout of T steps; finished episodes update the statistics.
 * Returns the number of finished episodes; *ret_sum, *len_sum their sums.
 *
 * Under mpirun each rank steps its own block of the environments
 * (env_block) and runs the policy on its own rows when a product of those
 * rows alone keeps the bits of all N (blocks of multiples of 12 rows,
 * ops_sgemm_rows_exact); otherwise on the shape of all N rows (a row of a
 * product gets its last bits from its place in the call,
 * docs/reproducibility.md; the other ranks' rows hold stale observations and
 * their outputs are dropped). Every rank draws one action number per
 * environment from the one stream, so its own get one process's actions. After each
 * step the ranks exchange their environments' done flags and ended episodes
 * (the reset stream is drawn in environment order, so every rank must know
 * which environments ended), and at the end the rollout's columns and the
 * environments' states, so every rank holds one process's rollout. */
static int rollout(Ppo *m, Trainer *tr, double *ret_sum, double *len_sum) {
    const PpoConfig *cfg = &m->cfg;
    int N = cfg->num_envs, T = cfg->num_steps, ended = 0, R = dist_size(), lo, hi;
    env_block(m, &lo, &hi);
    int nb = hi - lo;
    /* the policy's rows: this rank's alone where that keeps the bits, else all N */
    int exact = ops_sgemm_rows_exact(lo, hi, N), r0 = exact ? lo : 0, r1 = exact ? hi : N;
    long step_base = tr->step * (long)T * N;
    Ctx *c = &tr->ctx;
    int prev = ctx_set_grad(c, 0);
    *ret_sum = *len_sum = 0.0;
    for (int t = 0; t < T; t++) {
        size_t row = (size_t)t * N;
        memcpy(m->obs + row * CARTPOLE_OBS, m->next_obs, (size_t)N * CARTPOLE_OBS * sizeof(float));
        memcpy(m->done + row, m->next_done, (size_t)N * sizeof(float));
        ctx_reset(c);
        Tensor *X = tensor_from(c, 2, (int[]){r1 - r0, CARTPOLE_OBS}, m->next_obs + (size_t)r0 * CARTPOLE_OBS);
        Tensor *logits = ppo_actor(m, c, X), *v = ppo_critic(m, c, X);
        memcpy(m->val + row + lo, v->data + (lo - r0), (size_t)nb * sizeof(float));
        sample_actions(m->act + row, m->logp + row, logits->data + 2 * (size_t)(lo - r0), lo, hi, N,
                       &tr->rng);
        cartpole_vec_step_range(&m->env, lo, hi, m->act + row, m->rew + row, m->next_done, m->ep_ret,
                                m->ep_len);
        if (R > 1) { /* done, return, length of every environment to every rank */
            double *mine = m->xchg, *all = mine + 3 * (size_t)nb;
            for (int i = 0; i < nb; i++)
                mine[3 * i] = m->next_done[lo + i], mine[3 * i + 1] = m->ep_ret[lo + i],
                mine[3 * i + 2] = m->ep_len[lo + i];
            dist_allgather_doubles(all, mine, 3 * nb);
            for (int n = 0; n < N; n++)
                m->next_done[n] = (float)all[3 * n], m->ep_ret[n] = all[3 * n + 1],
                m->ep_len[n] = (int)all[3 * n + 2];
        }
        cartpole_vec_reset_ended(&m->env, m->next_done, lo, hi);
        cartpole_vec_obs(&m->env, m->next_obs);
        for (int n = 0; n < N; n++) {
            if (!m->ep_len[n]) continue;
            ended++;
            *ret_sum += m->ep_ret[n];
            *len_sum += m->ep_len[n];
            m->recent[m->episodes++ % 100] = m->ep_ret[n];
            if (m->solved_step < 0 && m->episodes >= 100) {
                double s = 0.0;
                for (int k = 0; k < 100; k++) s += m->recent[k];
                if (s / 100.0 >= CARTPOLE_SOLVED) m->solved_step = step_base + (long)(t + 1) * N;
            }
        }
    }
    if (R > 1) { /* the rollout's columns and the environments, whole on every rank */
        double *mine = xmalloc((size_t)T * nb * CARTPOLE_OBS * sizeof *mine);
        double *all = xmalloc((size_t)T * N * CARTPOLE_OBS * sizeof *all);
        gather_columns(m->obs, T, N, CARTPOLE_OBS, mine, all);
        gather_columns(m->logp, T, N, 1, mine, all);
        gather_columns(m->val, T, N, 1, mine, all);
        gather_columns(m->rew, T, N, 1, mine, all);
        float *a = xmalloc((size_t)T * N * sizeof *a);
        for (size_t i = 0; i < (size_t)T * N; i++) a[i] = (float)m->act[i];
        gather_columns(a, T, N, 1, mine, all);
        for (size_t i = 0; i < (size_t)T * N; i++) m->act[i] = (int)a[i];
        free(a);
        /* the environments: state[4], episode length and return */
        for (int i = 0; i < nb; i++) {
            memcpy(mine + 6 * (size_t)i, m->env.state + (size_t)(lo + i) * CARTPOLE_OBS,
                   CARTPOLE_OBS * sizeof *mine);
            mine[6 * i + 4] = m->env.len[lo + i], mine[6 * i + 5] = m->env.ret[lo + i];
        }
        dist_allgather_doubles(all, mine, 6 * nb);
        for (int n = 0; n < N; n++) {
            memcpy(m->env.state + (size_t)n * CARTPOLE_OBS, all + 6 * (size_t)n,
                   CARTPOLE_OBS * sizeof *all);
            m->env.len[n] = (int)all[6 * n + 4], m->env.ret[n] = all[6 * n + 5];
        }
        cartpole_vec_obs(&m->env, m->next_obs);
        free(mine), free(all);
    }
    ctx_reset(c);
    ctx_set_grad(c, prev);
    return ended;
}

/* next_value[N] = V(next_obs) */
static void bootstrap_value(Ppo *m, Ctx *c, float *next_value) {
    int N = m->cfg.num_envs, prev = ctx_set_grad(c, 0);
    ctx_reset(c);
    Tensor *X = tensor_from(c, 2, (int[]){N, CARTPOLE_OBS}, m->next_obs);
    memcpy(next_value, ppo_critic(m, c, X)->data, (size_t)N * sizeof(float));
    ctx_reset(c);
    ctx_set_grad(c, prev);
}

/* ------------------------------------------------------------------ update */

enum { M_GLOBAL_STEP, M_RETURN, M_LENGTH, M_RETURN100, M_PG, M_V, M_ENT, M_KL, M_OKL, M_CLIPFRAC,
       M_EV, M_COUNT };
static const char *const metric_names[M_COUNT] = {
    "global_step", "episodic_return", "episodic_length", "return_100",  "policy_loss",
    "value_loss",  "entropy",         "approx_kl",       "old_approx_kl", "ratio_clip_frac",
    "explained_variance"};

/* Gather minibatch rows idx[M] of the batch into m->mb / m->mb_act; with
 * norm_adv the advantages are normalised here, over the whole minibatch, so a
 * micro-batch of it (grad_accum, ranks) uses the minibatch's mean and std. */
static PpoBatch gather(Ppo *m, const int *idx, int M) {
    float *o = m->mb, *lp = o + (size_t)M * CARTPOLE_OBS, *ad = lp + M, *rt = ad + M, *vo = rt + M;
    for (int i = 0; i < M; i++) {
        int k = idx[i];
        memcpy(o + (size_t)i * CARTPOLE_OBS, m->obs + (size_t)k * CARTPOLE_OBS,
               CARTPOLE_OBS * sizeof(float));
        m->mb_act[i] = m->act[k];
        lp[i] = m->logp[k], ad[i] = m->adv[k], rt[i] = m->ret[k], vo[i] = m->val[k];
    }
    if (m->cfg.norm_adv) normalise(ad, ad, M);
    return (PpoBatch){M, o, m->mb_act, lp, ad, rt, vo, m->cfg.norm_adv};
}

static void shuffle(int *v, int n, Rng *r) { /* Fisher-Yates, as np.random.shuffle */
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1)), t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

/* The minibatch loss of micro-batch tr->micro: rows i M/K .. (i+1) M/K - 1 of
 * the minibatch (K = trainer_micro_batches: grad_accum on one process, x the
 * ranks under mpirun, each rank computing its own; the pipeline's all-reduce,
 * step 5, sums the gradient). Its stats go to m->micro_stats[i]. */
static Tensor *minibatch_loss(void *mp, Ctx *c, Trainer *tr, void *argp) {
    Ppo *m = mp;
    const PpoBatch *b = argp;
    int K = trainer_micro_batches(tr), i = tr->micro, n = b->M / K;
    size_t lo = (size_t)i * (size_t)n;
    PpoBatch s = {n, b->obs + lo * CARTPOLE_OBS, b->act + lo, b->logp_old + lo, b->adv + lo, b->ret + lo,
                  b->val_old + lo, b->adv_normalised};
    PpoStats st;
    Tensor *loss = ppo_loss_on(m, c, &s, &st);
    double *v = m->micro_stats + 6 * (size_t)i;
    v[0] = st.pg_loss, v[1] = st.v_loss, v[2] = st.entropy, v[3] = st.approx_kl;
    v[4] = st.old_approx_kl, v[5] = st.clipfrac;
    return loss;
}

/* The minibatch's stats: the mean over its K micro-batches in order (every
 * rank the same, so every rank takes the same target_kl decision). */
static PpoStats combine_stats(Ppo *m, Trainer *tr) {
    int K = trainer_micro_batches(tr);
    trainer_micro_gather(tr, m->micro_stats, 6);
    double v[6];
    for (int j = 0; j < 6; j++) {
        v[j] = m->micro_stats[j];
        for (int i = 1; i < K; i++) v[j] += m->micro_stats[6 * i + j];
        if (K > 1) v[j] /= K;
    }
    return (PpoStats){v[0], v[1], v[2], v[3], v[4], v[5]};
}

double ppo_update(Ppo *m, Trainer *tr, const int *order, PpoStats *last, double *clipfrac) {
    const PpoConfig *cfg = &m->cfg;
    int B = cfg->num_envs * cfg->num_steps, M = B / cfg->num_minibatches, nmb = 0;
    UpdateGroup *g = trainer_group(tr, "agent");
    PpoStats st = {NAN, NAN, NAN, NAN, NAN, NAN};
    double loss = NAN, clipfrac_sum = 0.0;
    for (int i = 0; i < B; i++) m->inds[i] = i;
    for (int epoch = 0; epoch < cfg->update_epochs && !tr->diverged; epoch++) {
        if (order)
            memcpy(m->inds, order + (size_t)epoch * B, (size_t)B * sizeof *m->inds);
        else
            shuffle(m->inds, B, &tr->rng);
        for (int start = 0; start < B && !tr->diverged; start += M) {
            PpoBatch mb = gather(m, m->inds + start, M);
            for (int i = 0; i < 6 * trainer_micro_batches(tr); i++) m->micro_stats[i] = NAN;
            loss = trainer_step(tr, &g, 1, minibatch_loss, m, &mb);
            st = combine_stats(m, tr);
            clipfrac_sum += st.clipfrac;
            nmb++;
        }
        if (st.approx_kl > cfg->target_kl) break; /* CleanRL checks after each epoch */
    }
    *last = st;
    *clipfrac = clipfrac_sum / (nmb ? nmb : 1);
    return loss;
}

static double ppo_step(void *mp, Trainer *tr) {
    Ppo *m = mp;
    const PpoConfig *cfg = &m->cfg;
    int N = cfg->num_envs, T = cfg->num_steps, B = N * T;
    double ret_sum, len_sum, clipfrac;
    int ended = rollout(m, tr, &ret_sum, &len_sum);
    float next_value[4096];
    bootstrap_value(m, &tr->ctx, next_value);
    ppo_gae(m->adv, m->ret, m->rew, m->val, m->done, next_value, m->next_done, T, N, cfg->gamma,
            cfg->gae_lambda);
    PpoStats st;
    double loss = ppo_update(m, tr, NULL, &st, &clipfrac);
    double ev = ppo_explained_variance(m->val, m->ret, B);
    double r100 = NAN;
    if (m->episodes >= 100) {
        r100 = 0.0;
        for (int k = 0; k < 100; k++) r100 += m->recent[k] / 100.0;
    }
    double v[M_COUNT] = {(double)(tr->step + 1) * B, ended ? ret_sum / ended : NAN,
                         ended ? len_sum / ended : NAN, r100, st.pg_loss, st.v_loss, st.entropy,
                         st.approx_kl, st.old_approx_kl, clipfrac, ev};
    for (int k = 0; k < M_COUNT; k++) trainer_set_metric(tr, m->col[k], v[k]);
    return loss;
}

/* ------------------------------------------------------------------ model */

static void *ppo_create(Trainer *tr, const void *cfgp) {
    const PpoConfig *cfg = cfgp;
    int N = cfg->num_envs, T = cfg->num_steps;
    if ((long)N * T > 1 << 24) die("[ppo] num_envs * num_steps = %ld is too large (at most 2^24)",
                                   (long)N * T);
    if (N % dist_size() != 0)
        die("[ppo] num_envs = %d environments cannot be split over %d ranks (mpirun -np %d): "
            "num_envs must be a multiple of the number of ranks", N, dist_size(), dist_size());
    int B = N * T;
    if (B % cfg->num_minibatches != 0 || cfg->num_minibatches > B)
        die("[ppo] num_minibatches = %d must divide the batch num_envs * num_steps = %d",
            cfg->num_minibatches, B);
    int K = trainer_micro_batches(tr);
    if ((B / cfg->num_minibatches) % K != 0)
        die("[ppo] the minibatch num_envs * num_steps / num_minibatches = %d rows must split into %d "
            "equal micro-batches ([train] grad_accum = %d x %d ranks)", B / cfg->num_minibatches, K,
            tr->train.grad_accum, K / tr->train.grad_accum);
    Ppo *m = xcalloc(1, sizeof *m);
    ppo_build(m, cfg, &tr->rng);
    m->xchg = xmalloc(3 * ((size_t)N + (size_t)N / dist_size()) * sizeof *m->xchg);
    m->micro_stats = xmalloc((size_t)K * 6 * sizeof *m->micro_stats);
    m->init_params = xmalloc(m->ps.n * sizeof(float));
    memcpy(m->init_params, m->ps.data, m->ps.n * sizeof(float));
    cartpole_vec_init(&m->env, N, cfg->max_episode_steps, (uint64_t)tr->run.seed);
    size_t b = (size_t)B;
    m->obs = xmalloc(b * CARTPOLE_OBS * sizeof(float));
    float **bufs[] = {&m->logp, &m->rew, &m->done, &m->val, &m->adv, &m->ret};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) *bufs[i] = xmalloc(b * sizeof(float));
    m->act = xmalloc(b * sizeof(int));
    m->inds = xmalloc(b * sizeof(int));
    m->mb = xmalloc(b * (CARTPOLE_OBS + 4) * sizeof(float));
    m->mb_act = xmalloc(b * sizeof(int));
    m->next_obs = xmalloc((size_t)N * CARTPOLE_OBS * sizeof(float));
    m->next_done = xcalloc((size_t)N, sizeof(float));
    m->ep_ret = xmalloc((size_t)N * sizeof(double));
    m->ep_len = xmalloc((size_t)N * sizeof(int));
    cartpole_vec_obs(&m->env, m->next_obs);
    m->solved_step = -1;
    trainer_add_group(tr, &m->ps);
    for (int k = 0; k < M_COUNT; k++) m->col[k] = trainer_add_metric(tr, metric_names[k]);
    return m;
}

double ppo_evaluate(Ppo *m, Ctx *c, int episodes, uint64_t seed, double *min_ret,
                    double *max_ret) {
    CartPoleVec env;
    cartpole_vec_init(&env, episodes, m->cfg.max_episode_steps, seed);
    Rng r;
    rng_seed(&r, seed, 23);
    float *obs = xmalloc((size_t)episodes * CARTPOLE_OBS * sizeof(float));
    float *rew = xmalloc((size_t)episodes * sizeof(float)), *done = xmalloc((size_t)episodes * sizeof(float));
    float *logp = xmalloc((size_t)episodes * sizeof(float));
    int *act = xmalloc((size_t)episodes * sizeof(int)), *len = xmalloc((size_t)episodes * sizeof(int));
    double *ret = xmalloc((size_t)episodes * sizeof(double));
    double *final = xmalloc((size_t)episodes * sizeof(double));
    char *running = xmalloc((size_t)episodes);
    memset(running, 1, (size_t)episodes);
    int prev = ctx_set_grad(c, 0), left = episodes;
    while (left > 0) {
        cartpole_vec_obs(&env, obs);
        ctx_reset(c);
        Tensor *lg = ppo_actor(m, c, tensor_from(c, 2, (int[]){episodes, CARTPOLE_OBS}, obs));
        sample_actions(act, logp, lg->data, 0, episodes, episodes, &r);
        cartpole_vec_step(&env, act, rew, done, ret, len);
        for (int i = 0; i < episodes; i++)
            if (running[i] && len[i]) final[i] = ret[i], running[i] = 0, left--;
    }
    ctx_reset(c);
    ctx_set_grad(c, prev);
    double s = 0.0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < episodes; i++) {
        s += final[i];
        lo = final[i] < lo ? final[i] : lo;
        hi = final[i] > hi ? final[i] : hi;
    }
    if (min_ret) *min_ret = lo;
    if (max_ret) *max_ret = hi;
    free(obs), free(rew), free(done), free(logp), free(act), free(len), free(ret), free(final);
    free(running);
    cartpole_vec_free(&env);
    return s / episodes;
}

/* ------------------------------------------------------------------ episode.png */

#define FILM_FRAMES 6

typedef struct Film {
    double *states[2];      /* [len+1][4] per episode: trained policy, untrained */
    int len[2];
    int frame[2][FILM_FRAMES];
} Film;

/* One episode of the agent's current policy (actions sampled) from a fresh
 * start drawn from r; states[t] is the state before step t, states[len] the
 * last. Returns len. */
static int record_episode(Ppo *m, Ctx *c, Rng *r, double *states) {
    cartpole_reset_state(states, r);
    int len = 0, prev = ctx_set_grad(c, 0);
    for (;;) {
        const double *s = states + (size_t)len * CARTPOLE_OBS;
        float obs[CARTPOLE_OBS], logp;
        for (int k = 0; k < CARTPOLE_OBS; k++) obs[k] = (float)s[k];
        ctx_reset(c);
        Tensor *lg = ppo_actor(m, c, tensor_from(c, 2, (int[]){1, CARTPOLE_OBS}, obs));
        int act;
        sample_actions(&act, &logp, lg->data, 0, 1, 1, r);
        double *next = states + (size_t)(len + 1) * CARTPOLE_OBS;
        memcpy(next, s, CARTPOLE_OBS * sizeof *next);
        int terminated = cartpole_step_state(next, act);
        if (terminated || ++len >= m->cfg.max_episode_steps) {
            len += terminated;
            break;
        }
    }
    ctx_reset(c);
    ctx_set_grad(c, prev);
    return len;
}

/* Cell: the track with its +-2.4 limits, the cart, the pole (half length 0.5,
 * leaning right for theta > 0 as Gymnasium draws it) and its axle. */
static void draw_cartpole(PlotDraw *d, int index, void *arg) {
    const Film *f = arg;
    int ep = index / FILM_FRAMES;
    const double *s = f->states[ep] + (size_t)f->frame[ep][index % FILM_FRAMES] * CARTPOLE_OBS;
    PlotColor track = {90, 90, 90, 255}, cart = {20, 20, 20, 255}, pole = {202, 152, 101, 255};
    PlotColor axle = {129, 132, 203, 255}, edge = {200, 60, 60, 255};
    plot_draw_line(d, -3.0, 0.0, 3.0, 0.0, 1.5, track);
    plot_draw_line(d, -CARTPOLE_X_THRESHOLD, -0.15, -CARTPOLE_X_THRESHOLD, 0.25, 1.5, edge);
    plot_draw_line(d, CARTPOLE_X_THRESHOLD, -0.15, CARTPOLE_X_THRESHOLD, 0.25, 1.5, edge);
    double x = s[0], th = s[2], py = 0.3; /* pivot on top of the cart */
    plot_draw_rect(d, x - 0.2, py - 0.24, x + 0.2, py, cart); /* Gymnasium: 50 x 30 px at 125 px/m */
    plot_draw_rotated_rect(d, x + 0.5 * sin(th), py + 0.5 * cos(th), 0.07, 1.0, -th, pole);
    plot_draw_circle(d, x, py, 0.045, axle);
}

/* episode.png: FILM_FRAMES frames, evenly spaced in time, of one episode of
 * the trained policy and one of the untrained (initial) agent, same start. */
static int write_episode_png(Ppo *m, Trainer *tr) {
    Film f;
    size_t cap = ((size_t)m->cfg.max_episode_steps + 1) * CARTPOLE_OBS;
    float *trained = xmalloc(m->ps.n * sizeof(float));
    memcpy(trained, m->ps.data, m->ps.n * sizeof(float));
    for (int ep = 0; ep < 2; ep++) {
        Rng r;
        rng_seed(&r, (uint64_t)tr->run.seed, 31); /* the same start for both */
        f.states[ep] = xmalloc(cap * sizeof(double));
        if (ep == 1) memcpy(m->ps.data, m->init_params, m->ps.n * sizeof(float));
        f.len[ep] = record_episode(m, &tr->ctx, &r, f.states[ep]);
        for (int k = 0; k < FILM_FRAMES; k++)
            f.frame[ep][k] = (int)((long)k * f.len[ep] / (FILM_FRAMES - 1));
    }
    memcpy(m->ps.data, trained, m->ps.n * sizeof(float));
    char caps[2 * FILM_FRAMES][64];
    const char *capp[2 * FILM_FRAMES];
    for (int i = 0; i < 2 * FILM_FRAMES; i++) {
        int ep = i / FILM_FRAMES, t = f.frame[ep][i % FILM_FRAMES];
        const char *end = t < f.len[ep] ? ""
                          : f.len[ep] >= m->cfg.max_episode_steps ? " (time limit)" : " (fell)";
        snprintf(caps[i], sizeof caps[i], "%s, t = %d%s", ep ? "untrained" : "trained", t, end);
        capp[i] = caps[i];
    }
    char title[CFG_STR_MAX + 128], path[CFG_STR_MAX + 32], err[256];
    snprintf(title, sizeof title, "%s: trained policy (top, %d steps) and untrained (bottom, %d steps)",
             tr->run.name, f.len[0], f.len[1]);
    snprintf(path, sizeof path, "%s/episode.png", tr->run.out_dir);
    PlotFilmstrip fs = {.title = title, .ncells = 2 * FILM_FRAMES, .ncols = FILM_FRAMES,
                        .cell_w = 200, .cell_h = 120, .view = {-2.8, 2.8, -0.25, 1.45},
                        .draw = draw_cartpole, .arg = &f, .captions = capp};
    int rc = plot_filmstrip(path, &fs, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    free(f.states[0]), free(f.states[1]), free(trained);
    return rc;
}

static void ppo_finish(void *mp, Trainer *tr) {
    Ppo *m = mp;
    long steps = tr->step * (long)m->cfg.num_envs * m->cfg.num_steps;
    if (m->solved_step >= 0)
        printf("%s: mean return of the last 100 training episodes reached %.0f at global step "
               "%ld\n", tr->run.name, CARTPOLE_SOLVED, m->solved_step);
    else
        printf("%s: mean return of the last 100 training episodes never reached %.0f in %ld "
               "steps\n", tr->run.name, CARTPOLE_SOLVED, steps);
    if (tr->run.plots && write_episode_png(m, tr) == 0)
        printf("%s: wrote %s/episode.png\n", tr->run.name, tr->run.out_dir);
    if (m->cfg.eval_episodes <= 0) return;
    double lo, hi;
    double mean = ppo_evaluate(m, &tr->ctx, m->cfg.eval_episodes,
                               (uint64_t)tr->run.seed + 1000003u, &lo, &hi);
    printf("%s: final policy over %d fresh episodes (actions sampled): mean return %.2f "
           "(min %.0f, max %.0f)\n", tr->run.name, m->cfg.eval_episodes, mean, lo, hi);
    fflush(stdout);
}

/* Checkpoint state besides parameters (recovery rollbacks): the environments
 * (states, episode counters, reset stream), the observation the next rollout
 * starts from, and the episode statistics, so a replay continues the same
 * episodes. The rollout buffers are rebuilt by every step. */
#define PPO_STATE_MAGIC 0x50504F31u /* "PPO1" */
static int ppo_save_state(const void *mp, FILE *f) {
    const Ppo *m = mp;
    size_t N = (size_t)m->env.n;
    uint32_t hdr[2] = {PPO_STATE_MAGIC, (uint32_t)N};
    int bad = io_put(f, hdr, sizeof hdr, 1) || io_put(f, m->env.state, sizeof(double), N * 4) ||
              io_put(f, m->env.len, sizeof(int), N) || io_put(f, m->env.ret, sizeof(double), N) ||
              io_put(f, &m->env.rng, sizeof m->env.rng, 1) ||
              io_put(f, m->next_obs, sizeof(float), N * CARTPOLE_OBS) ||
              io_put(f, m->next_done, sizeof(float), N) ||
              io_put(f, m->recent, sizeof m->recent, 1) || io_put(f, &m->episodes, sizeof(long), 1) ||
              io_put(f, &m->solved_step, sizeof(long), 1);
    return bad ? -1 : 0;
}

static int ppo_load_state(void *mp, FILE *f) {
    Ppo *m = mp;
    size_t N = (size_t)m->env.n;
    uint32_t hdr[2];
    if (io_get(f, hdr, sizeof hdr, 1) || hdr[0] != PPO_STATE_MAGIC || hdr[1] != N) {
        fprintf(stderr, "cliplab: error: PPO checkpoint state is truncated, not ours, or for "
                        "another num_envs\n");
        return -1;
    }
    int bad = io_get(f, m->env.state, sizeof(double), N * 4) || io_get(f, m->env.len, sizeof(int), N) ||
              io_get(f, m->env.ret, sizeof(double), N) || io_get(f, &m->env.rng, sizeof m->env.rng, 1) ||
              io_get(f, m->next_obs, sizeof(float), N * CARTPOLE_OBS) ||
              io_get(f, m->next_done, sizeof(float), N) ||
              io_get(f, m->recent, sizeof m->recent, 1) || io_get(f, &m->episodes, sizeof(long), 1) ||
              io_get(f, &m->solved_step, sizeof(long), 1);
    if (bad) fprintf(stderr, "cliplab: error: PPO checkpoint state is truncated\n");
    return bad ? -1 : 0;
}

static void ppo_destroy(void *mp) {
    Ppo *m = mp;
    ppo_free_params(m);
    cartpole_vec_free(&m->env);
    free(m->obs), free(m->logp), free(m->rew), free(m->done), free(m->val), free(m->adv);
    free(m->ret), free(m->act), free(m->inds), free(m->mb), free(m->mb_act);
    free(m->next_obs), free(m->next_done), free(m->ep_ret), free(m->ep_len);
    free(m->init_params), free(m->micro_stats), free(m->xchg);
    free(m);
}

static void ppo_describe(const void *mp, char *buf, size_t len) {
    const PpoConfig *cfg = &((const Ppo *)mp)->cfg;
    if (isfinite(cfg->clip_coef))
        snprintf(buf, len, "ratio clip %g%s", cfg->clip_coef, cfg->clip_vloss ? " + value clip" : "");
    else
        snprintf(buf, len, "no ratio clip%s", cfg->clip_vloss ? " (value clip inf)" : "");
}

static void ppo_title(const void *mp, char *buf, size_t len) {
    (void)mp;
    snprintf(buf, len, "PPO on CartPole-v1");
}

static const char *const ppo_groups[] = {"agent", NULL};
static const char *const ppo_plot_columns[] = {"episodic_return", "approx_kl", "entropy", NULL};
static const char *const ppo_progress_columns[] = {"episodic_return", "approx_kl", NULL};
/* [ppo] clip_coef (CleanRL's name) was renamed: [clip] has the gradient clip's coefficient */
static const char *const ppo_renamed[] = {"clip_coef", "ratio_clip", NULL};
static const double ppo_column_refs[] = {475.0, NAN, NAN};
static const char *const ppo_column_ref_labels[] = {"solved (CartPole-v1: 475)", NULL, NULL};

const ModelDef ppo_model = {
    .name = "ppo",
    .summary = "PPO with ratio clipping on CartPole-v1 (Schulman et al. 2017; CleanRL ppo.py)",
    .section = &ppo_section,
    .cfg_size = sizeof(PpoConfig),
    .create = ppo_create,
    .step = ppo_step,
    .finish = ppo_finish,
    .save_state = ppo_save_state,
    .load_state = ppo_load_state,
    .destroy = ppo_destroy,
    .groups = ppo_groups,
    .main_metric = "return_100", /* mean return of the last 100 training episodes */
    .main_metric_higher = 1,
    .plot_columns = ppo_plot_columns,
    .compare_columns = ppo_plot_columns, /* the comparison shows return, KL, entropy */
    .progress_columns = ppo_progress_columns,
    .renamed_keys = ppo_renamed,
    .plot_column_refs = ppo_column_refs,
    .plot_column_ref_labels = ppo_column_ref_labels,
    .describe = ppo_describe,
    .title = ppo_title,
};

/* test_cartpole.c: CartPole-v1 against a Python transcription of Gymnasium's
 * step (tests/ref/ref_cartpole.py) over random actions; the reset
 * distribution; and the vector of environments: auto-reset, truncation at
 * max_steps, per-episode return and length. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cartpole.h"
#include "tfile.h"

/* Same start states and actions as the transcription; every state after every
 * step must agree (both are float64 with the same operations in the same
 * order, so to rounding), and termination must come at the same step. */
Test(cartpole, dynamics_match_gymnasium_transcription) {
    TFile *tf = tfile_load("ref_cartpole");
    const TRec *st = tfile_get(tf, "states@f64");
    int E = st->shape[0], L = st->shape[1];
    const double *starts = tfile_f64(tf, "starts@f64"), *states = tfile_f64(tf, "states@f64");
    const int *actions = tfile_i32(tf, "actions"), *ends = tfile_i32(tf, "ends");
    long compared = 0;
    for (int e = 0; e < E; e++) {
        double s[4];
        memcpy(s, starts + 4 * e, sizeof s);
        int end = 0;
        for (int t = 0; t < L && !end; t++) {
            int term = cartpole_step_state(s, actions[e * L + t]);
            const double *ref = states + ((size_t)e * L + t) * 4;
            for (int k = 0; k < 4; k++)
                cr_assert(fabs(s[k] - ref[k]) <= 1e-12 * (1 + fabs(ref[k])),
                          "episode %d step %d component %d: %.17g vs %.17g", e, t, k, s[k], ref[k]);
            compared++;
            if (term) end = t + 1;
        }
        cr_assert_eq(end, ends[e], "episode %d terminated at %d, Gymnasium at %d", e, end, ends[e]);
    }
    cr_assert(compared > 500, "only %ld steps compared", compared);
    tfile_free(tf);
}

Test(cartpole, termination_thresholds) {
    /* just inside / outside 2.4 and 12 degrees, moving outward */
    double a[4] = {2.399, 0.0, 0.0, 0.0}, b[4] = {2.399, 1.0, 0.0, 0.0};
    cr_assert_eq(cartpole_step_state(a, 1), 0, "x 2.399 at rest is not terminal");
    cr_assert_eq(cartpole_step_state(b, 1), 1, "x 2.399 + 0.02 * 1 > 2.4 is terminal");
    double e[4] = {-2.395, -0.3, 0.0, 0.0}, f[4] = {-2.395, -0.2, 0.0, 0.0};
    cr_assert_eq(cartpole_step_state(e, 0), 1, "x -2.395 - 0.02 * 0.3 < -2.4 is terminal");
    cr_assert_eq(cartpole_step_state(f, 0), 0, "x -2.399 is not terminal");
    double th = CARTPOLE_THETA_THRESHOLD;
    cr_assert(fabs(th - 0.20943951023931953) < 1e-15, "12 degrees in radians: %.17g", th);
    double c[4] = {0.0, 0.0, th - 1e-4, 0.0}, d[4] = {0.0, 0.0, -th + 1e-4, -1.0};
    cr_assert_eq(cartpole_step_state(c, 1), 0);
    cr_assert_eq(cartpole_step_state(d, 0), 1, "theta below -12 degrees is terminal");
}

Test(cartpole, reset_is_uniform_in_plus_minus_0_05) {
    Rng r;
    rng_seed(&r, 3, 0);
    enum { K = 20000 };
    double sum[4] = {0}, sq[4] = {0}, lo = 1, hi = -1;
    for (int i = 0; i < K; i++) {
        double s[4];
        cartpole_reset_state(s, &r);
        for (int k = 0; k < 4; k++) {
            sum[k] += s[k], sq[k] += s[k] * s[k];
            lo = s[k] < lo ? s[k] : lo, hi = s[k] > hi ? s[k] : hi;
        }
    }
    cr_assert(lo >= -0.05 && hi < 0.05, "range [%g, %g]", lo, hi);
    cr_assert(lo < -0.0499 && hi > 0.0499, "range [%g, %g] does not fill (-0.05, 0.05)", lo, hi);
    for (int k = 0; k < 4; k++) {
        double mean = sum[k] / K, var = sq[k] / K - mean * mean;
        cr_assert(fabs(mean) < 0.002, "component %d mean %g", k, mean);
        /* U(-a, a) has variance a^2 / 3 */
        cr_assert(fabs(var - 0.05 * 0.05 / 3) < 0.03 * 0.05 * 0.05 / 3, "component %d var %g", k, var);
    }
}

/* A balancing controller (push toward where the pole falls) keeps the pole up,
 * so its episodes end by truncation at exactly max_steps. */
Test(cartpole, vector_truncates_and_auto_resets) {
    enum { N = 3, MAXS = 500 };
    CartPoleVec v;
    cartpole_vec_init(&v, N, MAXS, 5);
    float obs[N * 4], rew[N], done[N];
    double ret[N];
    int len[N], act[N], episodes = 0;
    for (int t = 0; t < 2 * MAXS; t++) {
        cartpole_vec_obs(&v, obs);
        for (int i = 0; i < N; i++) act[i] = obs[4 * i + 2] + 0.5f * obs[4 * i + 3] > 0 ? 1 : 0;
        int ended = cartpole_vec_step(&v, act, rew, done, ret, len);
        int count = 0;
        for (int i = 0; i < N; i++) {
            cr_assert_eq(rew[i], 1.0f);
            cr_assert_eq(done[i] != 0, len[i] != 0);
            if (!len[i]) continue;
            count++, episodes++;
            cr_assert_eq(len[i], MAXS, "env %d ended after %d steps (t = %d)", i, len[i], t);
            cr_assert_eq(ret[i], (double)MAXS);
            /* auto-reset: the next observation is a fresh start */
            double s[4];
            memcpy(s, v.state + 4 * i, sizeof s);
            for (int k = 0; k < 4; k++) cr_assert(fabs(s[k]) < 0.05, "not reset: %g", s[k]);
        }
        cr_assert_eq(ended, count);
        cr_assert_eq(t == MAXS - 1 || t == 2 * MAXS - 1, count == N, "t %d: %d ended", t, count);
    }
    cr_assert_eq(episodes, 2 * N);
    cartpole_vec_free(&v);
}

/* Random actions: episodes terminate early with return = length, and the
 * per-environment counters restart after each one. */
Test(cartpole, vector_episode_statistics_under_random_actions) {
    enum { N = 4, STEPS = 2000 };
    CartPoleVec v;
    cartpole_vec_init(&v, N, 500, 9);
    Rng r;
    rng_seed(&r, 9, 1);
    float rew[N], done[N];
    double ret[N];
    int len[N], act[N], since[N] = {0}, episodes = 0;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) act[i] = (int)rng_below(&r, 2);
        cartpole_vec_step(&v, act, rew, done, ret, len);
        for (int i = 0; i < N; i++) {
            since[i]++;
            if (!done[i]) continue;
            cr_assert_eq(len[i], since[i], "env %d: length %d, %d steps since its reset", i, len[i], since[i]);
            cr_assert_eq(ret[i], (double)len[i]);
            cr_assert(len[i] >= 8 && len[i] < 200, "random-action episode of %d steps", len[i]);
            since[i] = 0;
            episodes++;
        }
    }
    cr_assert(episodes > 200, "%d episodes", episodes);
    cartpole_vec_free(&v);
}

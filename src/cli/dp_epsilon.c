/* dp_epsilon.c: ./train --dp-epsilon N BATCH SIGMA EPOCHS DELTA [--orders tf|opacus]
 * and ./train --dp-sigma N BATCH EPSILON EPOCHS DELTA [--orders tf|opacus]:
 * the accountant (src/clip/rdp.h) from the command line.
 *
 * --dp-epsilon is tf-privacy's compute_dp_sgd_privacy: q = BATCH/N, steps =
 * ceil(EPOCHS N / BATCH), Poisson sampling assumed; it prints epsilon by the
 * current conversion (Balle et al. 2020) and by the older one (Mironov 2017,
 * what papers before 2021 quote), each with its best order. Default orders:
 * tf-privacy's list (so its test vectors reproduce); --orders opacus for
 * Opacus's. --dp-sigma is Opacus's get_noise_multiplier (tolerance 0.01). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_epsilon.h"
#include "rdp.h"

static int parse_num(const char *s, const char *what, double *out) {
    char *end;
    *out = strtod(s, &end);
    if (end == s || *end || !isfinite(*out)) {
        fprintf(stderr, "cliplab: error: %s: '%s' is not a number\n", what, s);
        return -1;
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: ./train --dp-epsilon N BATCH SIGMA EPOCHS DELTA [--orders tf|opacus]\n"
                    "       ./train --dp-sigma N BATCH EPSILON EPOCHS DELTA [--orders tf|opacus]\n"
                    "  N examples, BATCH expected batch (q = BATCH/N), SIGMA noise multiplier,\n"
                    "  EPOCHS (steps = ceil(EPOCHS N / BATCH)), DELTA in (0, 1)\n");
}

int dp_epsilon_main(int argc, char **argv, int want_sigma) {
    RdpOrderSet set = RDP_ORDERS_TF;
    if (argc == 7 && !strcmp(argv[5], "--orders")) {
        if (!strcmp(argv[6], "opacus")) set = RDP_ORDERS_OPACUS;
        else if (strcmp(argv[6], "tf")) {
            fprintf(stderr, "cliplab: error: --orders: '%s' (accepted: tf, opacus)\n", argv[6]);
            return 2;
        }
        argc = 5;
    }
    if (argc != 5) {
        usage();
        return 2;
    }
    double n, batch, third, epochs, delta;
    if (parse_num(argv[0], "N", &n) || parse_num(argv[1], "BATCH", &batch) ||
        parse_num(argv[2], want_sigma ? "EPSILON" : "SIGMA", &third) ||
        parse_num(argv[3], "EPOCHS", &epochs) || parse_num(argv[4], "DELTA", &delta))
        return 2;
    const char *bad = n < 1 ? "N must be at least 1"
                    : batch <= 0 ? "BATCH must be > 0"
                    : batch > n ? "BATCH > N: the sampling rate q = BATCH/N would exceed 1"
                    : third < 0 ? (want_sigma ? "EPSILON must be > 0" : "SIGMA must be >= 0")
                    : want_sigma && third == 0 ? "EPSILON must be > 0"
                    : epochs <= 0 ? "EPOCHS must be > 0"
                    : !(delta > 0 && delta < 1) ? "DELTA must be in (0, 1)" : NULL;
    if (bad) {
        fprintf(stderr, "cliplab: error: %s\n", bad);
        return 2;
    }
    if (delta >= 1.0 / n)
        fprintf(stderr, "cliplab: warning: DELTA %g >= 1/N = %g: a mechanism that publishes one "
                        "random example outright meets such a delta; use delta << 1/N\n",
                delta, 1.0 / n);
    double q = batch / n;
    long steps = (long)ceil(epochs * n / batch);
    const char *oname = set == RDP_ORDERS_TF ? "tf-privacy's" : "Opacus's";
    if (want_sigma) {
        double s = rdp_noise_multiplier(third, delta, q, steps, set, RDP_CONVERT_BALLE2020, 0.01);
        if (isnan(s)) {
            fprintf(stderr, "cliplab: error: epsilon %g is out of reach even at sigma 1e6 (the "
                            "privacy budget is too low)\n", third);
            return 1;
        }
        double o, e = rdp_dpsgd_epsilon(q, s, steps, delta, set, RDP_CONVERT_BALLE2020, &o);
        printf("noise multiplier sigma = %.6g gives eps = %.6g (target %g, tolerance 0.01) at "
               "delta = %g over %ld steps at q = %.6g (order %g; %s orders)\n",
               s, e, third, delta, steps, q, o, oname);
        return 0;
    }
    if (third == 0)
        fprintf(stderr, "cliplab: warning: SIGMA = 0: no noise, so no privacy: epsilon is infinite\n");
    double o_new, o_old;
    double e_new = rdp_dpsgd_epsilon(q, third, steps, delta, set, RDP_CONVERT_BALLE2020, &o_new);
    double e_old = rdp_dpsgd_epsilon(q, third, steps, delta, set, RDP_CONVERT_MIRONOV2017, &o_old);
    printf("DP-SGD with sampling rate = %.3g%% and noise_multiplier = %g iterated over %ld steps "
           "satisfies differential privacy with eps = %.16g and delta = %g.\n",
           100 * q, third, steps, e_new, delta);
    printf("The optimal RDP order is %g (%s orders; conversion of Balle et al. 2020, as Opacus "
           "and tf-privacy now).\n", o_new, oname);
    printf("Older conversion eps = RDP - ln(delta)/(alpha-1) (Abadi et al. 2016 and epsilons "
           "published before 2021): eps = %.16g at order %g.\n", e_old, o_old);
    double orders[RDP_MAX_ORDERS];
    int n_o = rdp_orders(orders, set);
    if (isfinite(e_new) && (o_new == orders[0] || o_new == orders[n_o - 1]))
        printf("The optimal order is at the end of the list: more orders could tighten the "
               "bound.\n");
    return 0;
}

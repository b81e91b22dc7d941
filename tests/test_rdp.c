/* test_rdp.c: the privacy accountant (src/clip/rdp.c).
 *  - tf-privacy's compute_dp_sgd_privacy_test vectors (its orders, steps =
 *    ceil(epochs N / batch)) to 1e-9 relative, and their optimal orders;
 *  - RDP of one step at integer and fractional orders against mpmath's
 *    numerical integral of the definition (tests/ref/ref_rdp.py) to 1e-9
 *    relative + 1e-13 absolute (the e^-30 stop of the fractional series);
 *  - epsilon by both conversions against the same integral over Opacus's orders;
 *  - the closed forms (q = 0, q = 1, sigma = 0) and the orders lists;
 *  - the noise multiplier from a target epsilon gives that epsilon back within
 *    Opacus's tolerance (and from below);
 *  - ./train --dp-epsilon / --dp-sigma: the printed numbers and the bad input. */
#include <criterion/criterion.h>
#include <math.h>

#include "cli.h"
#include "rdp.h"
#include "tfile.h"

static void close_rel(double a, double b, double rtol, const char *what) {
    cr_assert(fabs(a - b) <= rtol * fabs(b), "%s: got %.17g, expected %.17g (rel %.3g)", what, a, b,
              fabs(a - b) / fabs(b));
}

Test(rdp, tf_privacy_vectors) {
    /* (n, batch, sigma, epochs, delta) -> (eps, order), compute_dp_sgd_privacy_test.py */
    const double v[3][7] = {{60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19},
                            {100000, 100, 1.0, 30, 1e-7, 1.4154988495444845, 13},
                            {1e8, 1024, 0.1, 10, 1e-7, 5907982.31138195, 1.25}};
    for (int i = 0; i < 3; i++) {
        double order;
        long steps = (long)ceil(v[i][3] * v[i][0] / v[i][1]);
        double e = rdp_dpsgd_epsilon(v[i][1] / v[i][0], v[i][2], steps, v[i][4], RDP_ORDERS_TF,
                                     RDP_CONVERT_BALLE2020, &order);
        close_rel(e, v[i][5], 1e-9, "tf-privacy epsilon");
        cr_assert_eq(order, v[i][6], "vector %d: best order %g, expected %g", i, order, v[i][6]);
    }
}

Test(rdp, against_numerical_integral) {
    TFile *tf = tfile_load("ref_rdp");
    const TRec *r = tfile_get(tf, "rdp_cases@f64");
    const double *c = r->data;
    for (int i = 0; i < r->shape[0]; i++, c += 4) {
        char what[96];
        snprintf(what, sizeof what, "RDP q=%g sigma=%g alpha=%g", c[0], c[1], c[2]);
        /* the series stops once its terms fall below e^-30 (as Opacus), an
         * absolute error of about 1e-13 in A: 1e-13 absolute on top of 1e-9 */
        double got = rdp_sampled_gaussian(c[0], c[1], c[2]);
        cr_assert(fabs(got - c[3]) <= 1e-13 + 1e-9 * fabs(c[3]), "%s: got %.17g, expected %.17g",
                  what, got, c[3]);
    }
    r = tfile_get(tf, "eps_cases@f64");
    c = r->data;
    for (int i = 0; i < r->shape[0]; i++, c += 6) {
        double e_new = rdp_dpsgd_epsilon(c[0], c[1], (long)c[2], c[3], RDP_ORDERS_OPACUS,
                                         RDP_CONVERT_BALLE2020, NULL);
        double e_old = rdp_dpsgd_epsilon(c[0], c[1], (long)c[2], c[3], RDP_ORDERS_OPACUS,
                                         RDP_CONVERT_MIRONOV2017, NULL);
        close_rel(e_new, c[4], 1e-9, "epsilon, Balle et al. 2020");
        close_rel(e_old, c[5], 1e-9, "epsilon, Mironov 2017");
        cr_assert(e_new < e_old, "the newer conversion is the tighter one");
    }
    tfile_free(tf);
}

Test(rdp, closed_forms) {
    cr_assert_eq(rdp_sampled_gaussian(0.0, 1.0, 8.0), 0.0);
    close_rel(rdp_sampled_gaussian(1.0, 2.0, 8.0), 8.0 / 8.0, 1e-15, "q = 1: alpha/(2 sigma^2)");
    cr_assert(isinf(rdp_sampled_gaussian(0.01, 0.0, 8.0)), "sigma 0: no privacy");
    double order;
    cr_assert(isinf(rdp_dpsgd_epsilon(0.01, 0.0, 100, 1e-5, RDP_ORDERS_OPACUS,
                                      RDP_CONVERT_BALLE2020, &order)));
    cr_assert(isnan(order));
    /* composition: RDP adds over steps */
    double o[1] = {4.0}, r1[1], r10[1];
    rdp_compute(r1, o, 1, 0.02, 1.5, 1);
    rdp_compute(r10, o, 1, 0.02, 1.5, 10);
    close_rel(r10[0], 10 * r1[0], 1e-15, "composition");
}

Test(rdp, orders_lists) {
    double o[RDP_MAX_ORDERS];
    int n = rdp_orders(o, RDP_ORDERS_OPACUS);
    cr_assert_eq(n, 99 + 52);
    close_rel(o[0], 1.1, 1e-15, "first Opacus order");
    close_rel(o[98], 10.9, 1e-15, "last fractional Opacus order");
    cr_assert(o[99] == 12 && o[n - 1] == 63);
    n = rdp_orders(o, RDP_ORDERS_TF);
    cr_assert_eq(n, 10 + 59 + 3);
    cr_assert(o[0] == 1.25 && o[10] == 5 && o[n - 1] == 512);
}

Test(rdp, noise_multiplier_round_trip) {
    const double targets[3] = {0.5, 3.0, 8.0};
    for (int i = 0; i < 3; i++) {
        double q = 2048.0 / 60000, delta = 1e-5;
        long steps = (long)(40 / q);
        double s = rdp_noise_multiplier(targets[i], delta, q, steps, RDP_ORDERS_OPACUS,
                                        RDP_CONVERT_BALLE2020, 0.01);
        cr_assert(isfinite(s) && s > 0);
        double e = rdp_dpsgd_epsilon(q, s, steps, delta, RDP_ORDERS_OPACUS, RDP_CONVERT_BALLE2020,
                                     NULL);
        cr_assert(e <= targets[i] && e >= targets[i] - 0.01, "target %g: sigma %g gives eps %g",
                  targets[i], s, e);
    }
    /* a budget no sigma reaches */
    cr_assert(isnan(rdp_noise_multiplier(1e-9, 1e-5, 1.0, 1000000, RDP_ORDERS_OPACUS,
                                         RDP_CONVERT_BALLE2020, 0.01)));
}

/* ---- ./train --dp-epsilon / --dp-sigma as a user runs them */

Test(rdp, cli_prints_tf_privacy_epsilon_and_order, .init = cli_mkdir, .fini = cli_rmdir) {
    char out[4096];
    cr_assert_eq(cli_run("--dp-epsilon 60000 150 1.3 15 1e-5", out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "eps = 0.72422340261") && strstr(out, "optimal RDP order is 19"), "%s",
              out);
    cr_assert(strstr(out, "Older conversion"), "both conversions printed: %s", out);
    cr_assert_eq(cli_run("--dp-sigma 60000 2048 3 40 1e-5 --orders opacus", out, sizeof out, 1), 0);
    cr_assert(strstr(out, "noise multiplier sigma = 1.9"), "%s", out);
}

Test(rdp, cli_bad_input, .init = cli_mkdir, .fini = cli_rmdir) {
    char out[4096];
    cr_assert_eq(cli_run("--dp-epsilon 100 200 1 1 1e-5", out, sizeof out, 1), 2, "q > 1: %s", out);
    cr_assert(strstr(out, "q = BATCH/N"), "%s", out);
    cr_assert_eq(cli_run("--dp-epsilon 100 10 1 1 1x", out, sizeof out, 1), 2);
    cr_assert_eq(cli_run("--dp-epsilon 100 10 1 1", out, sizeof out, 1), 2, "missing DELTA");
    cr_assert_eq(cli_run("--dp-epsilon 60000 256 0 1 1e-5", out, sizeof out, 1), 0, "sigma 0 allowed");
    cr_assert(strstr(out, "no privacy") && strstr(out, "eps = inf"), "said loudly: %s", out);
    cr_assert_eq(cli_run("--dp-epsilon 1000 10 1 1 0.01", out, sizeof out, 1), 0);
    cr_assert(strstr(out, "warning: DELTA"), "delta >= 1/N warned: %s", out);
}

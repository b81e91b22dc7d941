/* bench_ddp_scaling.c: "beyond one machine" on paper (docs/ddp.md): the
 * speed-up of data-parallel training on N = 1..1024 ranks when each step ends
 * with a ring all-reduce of the fp32 gradient that does not overlap the
 * compute (as cliplab's: the reduce runs after backward):
 *   t_comm(N) = 2 (N-1) alpha + 2 (N-1)/N x bytes / bandwidth
 *   speed-up  = N t_c / (t_c + t_comm(N))        (per-rank batch fixed)
 * alpha = 20 us per hop (TCP over Ethernet, an assumption), bandwidth 10 and
 * 100 Gbit/s. t_c: this transformer's measured step (argv[1] seconds, one
 * process, batch 16 x 64 tokens); GPT-2 small (124M parameters, 8 x 1024
 * tokens per rank) at 6 x parameters x tokens FLOPs, run at the FLOP rate the
 * transformer measured here (this CPU) and at an assumed 100 TFLOP/s
 * accelerator; and the transformer with a step 10x shorter than measured (a
 * measurement on a loaded machine is slow; where latency starts to bite). Writes the figure to argv[3] and prints where the efficiency
 * falls under 50%.
 *   bench_ddp_scaling STEP_SECONDS PARAMS OUT.png */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "plot.h"

enum { NPTS = 11 }; /* N = 1, 2, 4, ..., 1024 */
#define ALPHA 20e-6

static double t_comm(double n, double bytes, double gbit) {
    if (n <= 1) return 0.0;
    return 2.0 * (n - 1) * ALPHA + 2.0 * (n - 1) / n * bytes / (gbit * 1e9 / 8.0);
}

static void curve(double *y, const double *x, double tc, double bytes, double gbit, const char *name) {
    double half = NAN;
    for (int i = 0; i < NPTS; i++) {
        y[i] = x[i] * tc / (tc + t_comm(x[i], bytes, gbit));
        if (isnan(half) && y[i] / x[i] < 0.5) half = x[i];
    }
    char at[48] = "none up to 1024";
    if (!isnan(half)) snprintf(at, sizeof at, "N = %.0f", half);
    printf("  %-40s %4.0f Gbit/s: speed-up at N = 1024: %7.1f; efficiency under 50%%: %s\n", name, gbit,
           y[NPTS - 1], at);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_ddp_scaling STEP_SECONDS PARAMS OUT.png\n");
        return 2;
    }
    double tc = atof(argv[1]), params = atof(argv[2]);
    double flops_ours = 6.0 * params * 16 * 64, rate = flops_ours / tc;
    double gpt2 = 124e6, gpt2_flops = 6.0 * gpt2 * 8 * 1024;
    double tc_cpu = gpt2_flops / rate, tc_acc = gpt2_flops / 100e12;
    printf("scaling model: this transformer %.0f parameters, step %.1f ms (%.2f GFLOP/s measured);\n"
           "  GPT-2 small step: %.1f s at that rate, %.3f s at 100 TFLOP/s; alpha %.0f us per hop\n",
           params, 1e3 * tc, rate / 1e9, tc_cpu, tc_acc, ALPHA * 1e6);
    /* the footer: how to remake it (bench_ddp.py passes the step it measured) */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "make ddp-scaling (bench_ddp_scaling %s %s, the step bench_ddp.py measured)",
             argv[1], argv[2]);
    plot_provenance("Command", cmd);
    double x[NPTS], ideal[NPTS], y[8][NPTS];
    for (int i = 0; i < NPTS; i++) x[i] = ideal[i] = pow(2.0, i);
    curve(y[0], x, tc, 4 * params, 10, "this transformer (measured step)");
    curve(y[1], x, tc, 4 * params, 100, "this transformer (measured step)");
    curve(y[6], x, tc / 10, 4 * params, 10, "this transformer, a 10x faster step");
    curve(y[2], x, tc_cpu, 4 * gpt2, 10, "GPT-2 small, this CPU's FLOP rate");
    curve(y[3], x, tc_cpu, 4 * gpt2, 100, "GPT-2 small, this CPU's FLOP rate");
    curve(y[4], x, tc_acc, 4 * gpt2, 10, "GPT-2 small, 100 TFLOP/s accelerator");
    curve(y[5], x, tc_acc, 4 * gpt2, 100, "GPT-2 small, 100 TFLOP/s accelerator");
    char l0[96], l1[96], l2[96], l3[96], l4[96], l5[96];
    snprintf(l0, sizeof l0, "10 Gbit/s (step %.0f ms, %.1f MB of gradient)", 1e3 * tc, 4 * params / 1e6);
    snprintf(l1, sizeof l1, "100 Gbit/s");
    snprintf(l2, sizeof l2, "10 Gbit/s, this CPU (step %.0f s)", tc_cpu);
    snprintf(l3, sizeof l3, "100 Gbit/s, this CPU");
    snprintf(l4, sizeof l4, "10 Gbit/s, 100 TFLOP/s accelerator (step %.2f s)", tc_acc);
    snprintf(l5, sizeof l5, "100 Gbit/s, 100 TFLOP/s accelerator");
    char l6[96];
    snprintf(l6, sizeof l6, "10 Gbit/s, a step 10x faster (%.0f ms)", 1e2 * tc);
    PlotSeries a[4] = {
        {.label = "ideal (N x)", .x = x, .y = ideal, .n = NPTS, .color = 8},
        {.label = l0, .x = x, .y = y[0], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 1},
        {.label = l1, .x = x, .y = y[1], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 2,
         .marker = PLOT_MARK_SQUARE},
        {.label = l6, .x = x, .y = y[6], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 6,
         .marker = PLOT_MARK_CROSS}};
    PlotSeries b[5] = {
        {.label = "ideal (N x)", .x = x, .y = ideal, .n = NPTS, .color = 8},
        {.label = l2, .x = x, .y = y[2], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 1},
        {.label = l3, .x = x, .y = y[3], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 2,
         .marker = PLOT_MARK_SQUARE},
        {.label = l4, .x = x, .y = y[4], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 3,
         .marker = PLOT_MARK_TRIANGLE},
        {.label = l5, .x = x, .y = y[5], .n = NPTS, .style = PLOT_LINE_MARKERS, .color = 4,
         .marker = PLOT_MARK_DIAMOND}};
    char ta[160];
    snprintf(ta, sizeof ta, "This transformer (%.2fM parameters, 16 x 64 tokens per rank)", params / 1e6);
    PlotPanel p[2] = {
        {.title = ta, .xlabel = "ranks N", .ylabel = "speed-up over one rank (samples/s)", .logx = 1,
         .logy = PLOT_LOGY_ON, .series = a, .nseries = 4},
        {.title = "GPT-2 small (124M parameters, 8 x 1024 tokens per rank)", .xlabel = "ranks N",
         .ylabel = "speed-up over one rank (samples/s)", .logx = 1, .logy = PLOT_LOGY_ON, .series = b,
         .nseries = 5}};
    char err[256];
    if (plot_figure(argv[3],
                    "When data parallelism stops paying: ring all-reduce after each step, 20 us per hop",
                    p, 2, 0, 0, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("wrote %s\n", argv[3]);
    return 0;
}

/* test_transformer.c: the character-level GPT: PyTorch parity of the loss,
 * the logits and every parameter gradient; the initial loss at ln V; a short
 * deterministic AdamW trajectory that lowers the loss; the corpus loader
 * (vocabulary, split, windows, errors); the checkpoint-state hooks; and
 * ./train end to end on a tiny corpus (val_loss logged, sample printed, a
 * missing corpus a clear error). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transformer.h"
#include "ops.h"
#include "optim.h"
#include "cli.h"
#include "tfile.h"

static TransformerConfig small_config(int C, int L, int NH, int T) {
    TransformerConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.d_model = C, cfg.n_layer = L, cfg.n_head = NH, cfg.context = T;
    return cfg;
}

/* ------------------------------------------------------------ parity */

/* Same weights and tokens as tests/ref/ref_transformer.py (computed there in
 * float64). Tolerances cover float32 through 2 blocks: the loss and logits to
 * ~1e-6 relative; gradients, which pass back through 2 attention softmaxes,
 * 5 LayerNorms and the tied head (two contributions summed into wte), to
 * atol 2e-6 + rtol 1e-4 (observed worst about a tenth of that). */
Test(transformer, torch_parity_loss_logits_and_every_gradient) {
    enum { B = 3, T = 16, C = 32, L = 2, NH = 2, V = 20 };
    TFile *tf = tfile_load("ref_transformer");
    TransformerConfig cfg = small_config(C, L, NH, T);
    Transformer m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    transformer_build(&m, &cfg, V, &r);
    char key[96];
    cr_assert_eq(m.ps.count, 4 + 12 * L);
    for (int i = 0; i < m.ps.count; i++) {
        Param *p = &m.ps.params[i];
        snprintf(key, sizeof key, "w.%s", p->name);
        cr_assert_eq(tfile_get(tf, key)->n, p->t.n, "%s size", key);
        memcpy(p->t.data, tfile_f32(tf, key), p->t.n * sizeof(float));
    }
    Ctx c;
    ctx_init(&c, 16 << 20, 1024);
    const int *idx = tfile_i32(tf, "idx"), *tgt = tfile_i32(tf, "targets");
    Tensor *logits = transformer_logits(&m, &c, idx, B, T);
    cr_assert(logits->ndim == 2 && logits->shape[0] == B * T && logits->shape[1] == V);
    assert_close(logits->data, tfile_f32(tf, "logits"), logits->n, 1e-5, 1e-5, "logits");
    Tensor *loss = ad_cross_entropy(&c, logits, tgt);
    assert_close(loss->data, tfile_f32(tf, "loss"), 1, 1e-6, 1e-6, "loss");
    ad_backward(&c, loss, 1.0f);
    for (int i = 0; i < m.ps.count; i++) {
        Param *p = &m.ps.params[i];
        snprintf(key, sizeof key, "g.%s", p->name);
        const float *ref = tfile_f32(tf, key);
        double norm = 0;
        for (size_t j = 0; j < p->t.n; j++) norm += (double)ref[j] * ref[j];
        cr_assert(norm > 1e-12, "%s: reference gradient is zero, the test would be vacuous", key);
        assert_close(p->t.grad, ref, p->t.n, 2e-6, 1e-4, key);
    }
    ctx_free(&c);
    transformer_free_params(&m);
    tfile_free(tf);
}

/* -------------------------------------------------------- init and layout */

Test(transformer, parameter_layout_decay_and_init) {
    TransformerConfig cfg = small_config(128, 4, 4, 64);
    Transformer m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 3, 0);
    transformer_build(&m, &cfg, 96, &r);
    /* 96*128 + 64*128 + 4 * (12C^2 + 13C) + 2C */
    size_t C = 128, expect = 96 * C + 64 * C + 4 * (12 * C * C + 13 * C) + 2 * C;
    cr_assert_eq(m.ps.n, expect, "%zu parameters, expected %zu", m.ps.n, expect);
    double resid_std = 0.02 / sqrt(8.0);
    for (int i = 0; i < m.ps.count; i++) {
        const Param *p = &m.ps.params[i];
        cr_assert_eq(p->decay, p->t.ndim == 2, "%s: decay %d for %d dims", p->name, p->decay,
                     p->t.ndim);
        double s = 0, s2 = 0;
        for (size_t j = 0; j < p->t.n; j++) {
            s += p->t.data[j];
            s2 += (double)p->t.data[j] * p->t.data[j];
        }
        double mean = s / p->t.n, sd = sqrt(s2 / p->t.n - mean * mean);
        if (p->t.ndim == 2) {
            double want = p->name[0] == 'h' && strstr(p->name, "w_proj") ? resid_std : 0.02;
            cr_assert(fabs(sd - want) < 0.1 * want, "%s: std %g, expected %g", p->name, sd, want);
        } else {
            double want = strstr(p->name, "ln") && p->name[strlen(p->name) - 1] == 'w' ? 1.0 : 0.0;
            cr_assert(sd == 0.0 && mean == want, "%s: mean %g std %g, expected constant %g",
                      p->name, mean, sd, want);
        }
    }
    transformer_free_params(&m);
}

/* At the GPT-2 init the logits are lnf(x) wte^T with lnf(x) of unit variance,
 * so each logit has variance ~ C * 0.02^2 and the expected loss is about
 * ln V + C * 0.02^2 / 2 = ln V + 0.026 for C = 128: within 0.06 of ln V. */
Test(transformer, initial_loss_is_ln_vocab) {
    enum { B = 8, T = 64, V = 80 };
    TransformerConfig cfg = small_config(128, 4, 4, T);
    Transformer m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 5, 0);
    transformer_build(&m, &cfg, V, &r);
    static int x[B * T], y[B * T];
    for (int i = 0; i < B * T; i++) x[i] = (int)rng_below(&r, V), y[i] = (int)rng_below(&r, V);
    Ctx c;
    ctx_init(&c, 64 << 20, 1024);
    ctx_set_grad(&c, 0);
    Tensor *loss = transformer_loss_on(&m, &c, x, y, B, T);
    cr_assert(fabs(loss->data[0] - log((double)V)) < 0.06, "initial loss %g, ln V = %g",
              (double)loss->data[0], log((double)V));
    cr_assert_eq(c.nnodes, 0, "no-grad forward recorded %zu nodes", c.nnodes);
    ctx_free(&c);
    transformer_free_params(&m);
}

/* ------------------------------------------------------------ training */

static const char *corpus_text(void) {
    return "The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n%\n"
           "All that glitters is not gold. Fortune favours the bold; the meek inherit.\n%\n"
           "Time flies like an arrow; fruit flies like a banana. Never say never.\n%\n";
}

/* Five AdamW steps on random windows of a small text; returns the losses. */
static void trajectory(uint64_t seed, double *losses, int steps) {
    enum { B = 4, T = 16 };
    const char *text = corpus_text();
    TransformerData d;
    char err[256];
    cr_assert_eq(transformer_data_from_text(&d, (const unsigned char *)text, strlen(text), 0.1,
                                            T, err, sizeof err), 0, "%s", err);
    TransformerConfig cfg = small_config(32, 2, 2, T);
    Transformer m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, seed, 54);
    transformer_build(&m, &cfg, d.vocab, &r);
    OptimConfig oc = {.kind = OPTIM_ADAMW, .lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                      .weight_decay = 0.1, .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, m.ps.n);
    Ctx c;
    ctx_init(&c, 16 << 20, 1024);
    int x[B * T], y[B * T], fx[B * T], fy[B * T];
    Rng fixed;
    rng_seed(&fixed, 9, 9);
    transformer_sample_batch(&d, &fixed, B, T, fx, fy); /* one batch to measure progress on */
    for (int s = 0; s < steps; s++) {
        ctx_reset(&c);
        transformer_sample_batch(&d, &r, B, T, x, y);
        ad_backward(&c, transformer_loss_on(&m, &c, x, y, B, T), 1.0f);
        optim_step(&opt, &m.ps, oc.lr);
        param_zero_grad(&m.ps);
        ctx_reset(&c);
        ctx_set_grad(&c, 0);
        losses[s] = transformer_loss_on(&m, &c, fx, fy, B, T)->data[0];
        ctx_set_grad(&c, 1);
    }
    ctx_free(&c);
    optim_free(&opt);
    transformer_free_params(&m);
    transformer_data_free(&d);
}

Test(transformer, deterministic_trajectory_lowers_the_loss) {
    enum { STEPS = 6 };
    double a[STEPS], b[STEPS], other[STEPS];
    trajectory(11, a, STEPS);
    trajectory(11, b, STEPS);
    trajectory(12, other, STEPS);
    for (int s = 0; s < STEPS; s++) {
        cr_assert(isfinite(a[s]), "step %d loss %g", s, a[s]);
        cr_assert(a[s] == b[s], "step %d: same seed gave %.9g and %.9g", s, a[s], b[s]);
    }
    cr_assert(a[STEPS - 1] < a[0] - 0.1, "loss did not fall: %g -> %g", a[0], a[STEPS - 1]);
    cr_assert(other[0] != a[0], "another seed gave the same numbers");
}

/* ------------------------------------------------------------ data */

Test(transformer, vocab_split_and_fallback) {
    /* training part "abcabca..." (no 'z'), validation has 'z' */
    enum { N = 100 };
    unsigned char text[N];
    for (int i = 0; i < N; i++) text[i] = (unsigned char)"cab"[i % 3];
    text[95] = 'z';
    text[97] = ' ';
    TransformerData d;
    char err[256];
    cr_assert_eq(transformer_data_from_text(&d, text, N, 0.1, 8, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, (size_t)N);
    cr_assert_eq(d.n_train, (size_t)90, "n_train %zu", d.n_train);
    cr_assert_eq(d.vocab, 3);
    cr_assert(d.itos[0] == 'a' && d.itos[1] == 'b' && d.itos[2] == 'c', "vocab not sorted");
    cr_assert(d.stoi['a'] == 0 && d.stoi['c'] == 2 && d.stoi['z'] == -1 && d.stoi[' '] == -1);
    cr_assert_eq(d.fallback, 0, "no space in training: fallback id 0");
    cr_assert_eq(d.unknown_val, (size_t)2, "'z' and ' ' are unseen");
    cr_assert_eq(d.tokens[95], 0);
    for (int i = 0; i < 90; i++) cr_assert_eq(d.itos[d.tokens[i]], text[i]);
    transformer_data_free(&d);

    const char *t2 = "hello world, hello again and again";
    cr_assert_eq(transformer_data_from_text(&d, (const unsigned char *)t2, strlen(t2), 0.2, 4,
                                            err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.fallback, d.stoi[' '], "fallback is the space when training has one");
    transformer_data_free(&d);
}

Test(transformer, windows_are_shifted_and_inside_their_split) {
    enum { N = 1000, B = 64, T = 10 };
    unsigned char text[N];
    for (int i = 0; i < N; i++) text[i] = (unsigned char)(i % 200 + 32); /* position readable */
    TransformerData d;
    char err[256];
    cr_assert_eq(transformer_data_from_text(&d, text, N, 0.25, T, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n_train, (size_t)750);
    int x[B * T], y[B * T];
    Rng r;
    rng_seed(&r, 2, 0);
    transformer_sample_batch(&d, &r, B, T, x, y);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int pos = d.itos[x[b * T + t]] - 32, next = d.itos[y[b * T + t]] - 32;
            cr_assert_eq(next, (pos + 1) % 200, "target is the next character");
            if (t > 0) cr_assert_eq(pos, (d.itos[x[b * T + t - 1]] - 32 + 1) % 200);
        }
    /* validation windows: the first starts at n_train, the last ends at n - 1 */
    transformer_val_window(&d, 0, 5, T, x, y);
    cr_assert_eq(d.itos[x[0]], text[750]);
    transformer_val_window(&d, 4, 5, T, x, y);
    cr_assert_eq(d.itos[y[T - 1]], text[N - 1]);
    transformer_data_free(&d);
}

/* Input that is not a text file is refused before it is read: a device has no
 * size to check, an oversized file is refused by its size (a sparse file here,
 * nothing read), a binary file at its first NUL or non-UTF-8 byte. */
Test(transformer, loader_refuses_devices_oversize_and_binary, .init = cli_mkdir,
     .fini = cli_rmdir) {
    TransformerData d;
    char err[1024], path[512];
    cr_assert_eq(transformer_data_load(&d, "/dev/zero", "", 0.1, 4, err, sizeof err), -1);
    cr_assert(strstr(err, "/dev/zero") && strstr(err, "not a regular file"), "%s", err);
    snprintf(path, sizeof path, "%s/huge.txt", cli_dir);
    FILE *f = fopen(path, "w");
    cr_assert(f && ftruncate(fileno(f), (1L << 30) + 1) == 0);
    fclose(f);
    cr_assert_eq(transformer_data_load(&d, path, "", 0.1, 4, err, sizeof err), -1);
    cr_assert(strstr(err, "1073741825 bytes"), "refused by its size: %s", err);
#define S(lit) lit, sizeof lit - 1
    static const struct {
        const char *bytes;
        size_t n;
        const char *why;
        const char *where;
    } bad[] = {
        {S("a text with a\n\0 NUL byte in it, long enough"), "NUL", "byte 14 (line 2)"},
        {S("latin-1 caf\xe9 is not UTF-8, long enough here"), "not UTF-8", "byte 11 (line 1)"},
        {S("overlong \xc0\xaf slash, long enough here......"), "not UTF-8", "byte 9"},
        {S("surrogate \xed\xa0\x80 half, long enough here..."), "not UTF-8", "byte 10"},
        {S("cut at the end, long enough here............\xe2\x82"), "not UTF-8", "byte 44"},
    };
#undef S
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.txt", cli_dir, i);
        f = fopen(path, "wb");
        cr_assert_eq(fwrite(bad[i].bytes, 1, bad[i].n, f), bad[i].n);
        fclose(f);
        cr_assert_eq(transformer_data_load(&d, path, "", 0.1, 4, err, sizeof err), -1, "case %zu", i);
        cr_assert(strstr(err, "not text") && strstr(err, bad[i].why) && strstr(err, bad[i].where),
                  "case %zu: %s", i, err);
    }
    /* UTF-8 text (and fortunes' BEL and backspace) is text */
    cli_write("ok.txt", "caf\xc3\xa9, \xe2\x82\xac and \xf0\x9f\x99\x82 with a bell \a and a b\bbackspace");
    snprintf(path, sizeof path, "%s/ok.txt", cli_dir);
    cr_assert_eq(transformer_data_load(&d, path, "", 0.1, 4, err, sizeof err), 0, "%s", err);
    transformer_data_free(&d);
}

Test(transformer, loader_reads_files_directories_and_reports_errors, .init = cli_mkdir,
     .fini = cli_rmdir) {
    TransformerData d;
    char err[1024], path[512];
    cli_write("a", "first file text, long enough. ");
    cli_write("b", "second file with more text!");
    cli_write("empty.txt", "");
    snprintf(path, sizeof path, "%s/a", cli_dir);
    cr_assert_eq(transformer_data_load(&d, path, "ignored", 0.3, 4, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, strlen("first file text, long enough. "));
    transformer_data_free(&d);
    /* a directory: the listed files, concatenated in the given order */
    cr_assert_eq(transformer_data_load(&d, cli_dir, "b, a", 0.3, 4, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, strlen("second file with more text!first file text, long enough. "));
    cr_assert_eq(d.itos[d.tokens[0]], 's');
    transformer_data_free(&d);
    /* missing file: names the path and the Debian packages of the default */
    snprintf(path, sizeof path, "%s/missing.txt", cli_dir);
    cr_assert_eq(transformer_data_load(&d, path, "", 0.3, 4, err, sizeof err), -1);
    cr_assert(strstr(err, path) && strstr(err, "No such file") && strstr(err, "fortunes"), "%s",
              err);
    cr_assert_eq(transformer_data_load(&d, cli_dir, "a,nope", 0.3, 4, err, sizeof err), -1);
    cr_assert(strstr(err, "nope"), "%s", err);
    cr_assert_eq(transformer_data_load(&d, cli_dir, "", 0.3, 4, err, sizeof err), -1);
    cr_assert(strstr(err, "directory"), "%s", err);
    snprintf(path, sizeof path, "%s/empty.txt", cli_dir);
    cr_assert_eq(transformer_data_load(&d, path, "", 0.3, 4, err, sizeof err), -1);
    cr_assert(strstr(err, "empty"), "%s", err);
    /* too short for the context: both splits need context + 1 bytes */
    snprintf(path, sizeof path, "%s/a", cli_dir);
    cr_assert_eq(transformer_data_load(&d, path, "", 0.1, 64, err, sizeof err), -1);
    cr_assert(strstr(err, "too short"), "%s", err);
}

Test(transformer, checkpoint_state_round_trip_and_mismatch) {
    const char *text = corpus_text();
    Transformer m;
    memset(&m, 0, sizeof m);
    char err[256];
    cr_assert_eq(transformer_data_from_text(&m.data, (const unsigned char *)text, strlen(text),
                                            0.1, 8, err, sizeof err), 0, "%s", err);
    FILE *f = tmpfile();
    cr_assert(f);
    cr_assert_eq(transformer_model.save_state(&m, f), 0);
    rewind(f);
    cr_assert_eq(transformer_model.load_state(&m, f), 0);
    rewind(f);
    m.data.n_train--; /* another split of the corpus */
    cr_assert_neq(transformer_model.load_state(&m, f), 0);
    fclose(f);
    f = tmpfile();
    cr_assert_neq(transformer_model.load_state(&m, f), 0, "an empty stream loads");
    fclose(f);
    transformer_data_free(&m.data);
}

/* ------------------------------------------------------------ ./train */

static int run_train(const char *args, char *out, size_t outlen) {
    return cli_run(args, out, outlen, 1);
}

static const char *tiny_ini =
    "[model]\ntype = transformer\n"
    "[transformer]\nd_model = 16\nn_layer = 1\nn_head = 2\ncontext = 8\npath = corpus.txt\n"
    "eval_batches = 2\nsample_chars = 40\ntemperature = 0.5\nsample_prompt = The\n"
    "[train]\nsteps = 6\nbatch_size = 4\neval_every = 3\nquiet = false\n"
    "[optim]\nkind = adamw\nlr = 1e-2\n[run]\nplots = false\n";

Test(transformer, train_end_to_end_logs_val_loss_and_samples, .init = cli_mkdir, .fini = cli_rmdir) {
    static char out[1 << 16];
    cli_write("corpus.txt", corpus_text());
    cli_write("tiny.ini", tiny_ini);
    cr_assert_eq(run_train("tiny.ini", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "sample (temperature 0.5"), "no sample printed:\n%s", out);
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/runs/tiny/metrics.csv", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no metrics.csv");
    cr_assert(fgets(line, sizeof line, f));
    char *col = strstr(line, "val_loss");
    cr_assert(col, "no val_loss column: %s", line);
    int vc = 0;
    for (char *p = line; p < col; p++) vc += *p == ',';
    int with_val = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        for (int k = 0; k < vc; k++) p = strchr(p, ',') + 1;
        double v = strtod(p, NULL);
        rows++;
        if (!isnan(v)) {
            with_val++;
            cr_assert(v > 0 && v < 10, "val_loss %g", v);
        }
    }
    fclose(f);
    cr_assert_eq(rows, 6);
    cr_assert_eq(with_val, 2, "val_loss at steps 3 and 6, got %d rows with it", with_val);
}

Test(transformer, train_missing_corpus_is_a_clear_error, .init = cli_mkdir, .fini = cli_rmdir) {
    static char out[1 << 16];
    cli_write("tiny.ini", tiny_ini);
    int rc = run_train("tiny.ini transformer.path=no_such_corpus.txt", out, sizeof out);
    cr_assert_neq(rc, 0, "exit status 0 on a missing corpus");
    cr_assert(strstr(out, "no_such_corpus.txt") && strstr(out, "fortunes"), "%s", out);
    struct stat sb;
    char path[512];
    snprintf(path, sizeof path, "%s/runs/tiny/metrics.csv", cli_dir);
    cr_assert(stat(path, &sb) != 0, "metrics.csv written on an error");
}

/* transformer.c: the character-level GPT of transformer.h, its corpus, its
 * [transformer] section, validation loss and the sample printed after training.
 *
 * What it shows: the LLM recipe of the seeds (AdamW beta2 0.95, decoupled
 * weight decay 0.1 on matrices, warm-up then cosine decay, global L2 clip 1.0,
 * as in GPT-3 / Llama 2) on a network small enough to train in minutes on two
 * cores. The configs in configs/transformer_*.ini say which learning rates
 * make the unclipped run spike and why.
 *
 * Data: bytes of a text file (default: nine category files of Debian's
 * fortunes / fortunes-min packages, ~1.4 MB). Training batches are random
 * windows drawn from the trainer's Rng (tr->rng), so a checkpoint of the
 * trainer carries the data position; the validation batches are fixed,
 * evenly spaced windows over the held-out tail. */
#include "transformer.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "ops.h"
#include "train.h"

#define LN_EPS 1e-5f          /* torch.nn.LayerNorm default */
#define INIT_STD 0.02f        /* GPT-2 */
#define MAX_CORPUS (1u << 30) /* 1 GiB: windows are drawn with a 32-bit generator */
#define DEFAULT_DIR "/usr/share/games/fortunes"
#define DEFAULT_FILES "computers,cookie,definitions,literature,people,science,songs-poems,wisdom,work"
#define CORPUS_HINT                                                                         \
    "set [transformer] path to a UTF-8/ASCII text file (files is then ignored), or install " \
    "the default corpus from the Debian packages fortunes and fortunes-min (make deps)"

/* ------------------------------------------------------------------ config */

#define TF_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(TransformerConfig, f), d, lo, hi, NULL, h}
static const CfgKey tf_keys[] = {
    TF_KEY("d_model", CFG_INT, d_model, "128", 4, 4096, "width C of the residual stream"),
    TF_KEY("n_layer", CFG_INT, n_layer, "4", 1, 64, "transformer blocks L"),
    TF_KEY("n_head", CFG_INT, n_head, "4", 1, 64, "attention heads (must divide d_model)"),
    TF_KEY("context", CFG_INT, context, "64", 2, 4096,
           "characters per training window T (and the longest input)"),
    TF_KEY("path", CFG_STRING, path, DEFAULT_DIR, 0, 0,
           "corpus: a text file, or a directory whose `files` are concatenated"),
    TF_KEY("files", CFG_STRING, files, DEFAULT_FILES, 0, 0,
           "when path is a directory: comma-separated file names in it, in this order"),
    TF_KEY("val_fraction", CFG_DOUBLE, val_fraction, "0.1", 0.001, 0.9,
           "last fraction of the text held out for val_loss"),
    TF_KEY("eval_batches", CFG_INT, eval_batches, "8", 1, 100000,
           "fixed validation batches ([train] batch_size windows each) per evaluation"),
    TF_KEY("sample_chars", CFG_INT, sample_chars, "300", 0, 100000,
           "characters generated after training (0 = no sample)"),
    TF_KEY("temperature", CFG_DOUBLE, temperature, "0.8", 0, 10,
           "sampling temperature: softmax(logits / temperature); 0 = greedy"),
    TF_KEY("sample_prompt", CFG_STRING, sample_prompt, "", 0, 0,
           "text the sample continues (empty: start after a newline)"),
};
static const CfgSection tf_section = {
    "transformer", tf_keys, (int)(sizeof tf_keys / sizeof *tf_keys),
    "decoder-only character-level GPT on a text corpus (default: Debian's fortunes)", NULL};

/* -------------------------------------------------------------------- data */

/* Append the whole file at path to *buf (grown as needed); 0 or -1 + err. */
static int append_file(unsigned char **buf, size_t *len, size_t *cap, const char *path,
                       char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read corpus file %s: %s; %s", path, strerror(errno),
                 CORPUS_HINT);
        return -1;
    }
    /* the size before the bytes: a device (/dev/zero) or a pipe has none to check */
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "corpus file %s is not a regular file (a device, pipe or folder); "
                 "%s", path, CORPUS_HINT);
        rc = -1;
    } else if ((uint64_t)st.st_size > MAX_CORPUS - *len) {
        snprintf(err, errlen, "corpus file %s is %lld bytes: with what is read before it, more "
                 "than the %u-byte limit", path, (long long)st.st_size, MAX_CORPUS);
        rc = -1;
    }
    while (rc == 0) {
        if (*cap - *len < 65536) {
            *cap = 2 * *cap + 65536;
            *buf = realloc(*buf, *cap);
            if (!*buf) die("out of memory reading %s", path);
        }
        size_t got = fread(*buf + *len, 1, *cap - *len, f);
        *len += got;
        if (got == 0) break;
        if (*len > MAX_CORPUS) {
            snprintf(err, errlen, "corpus larger than %u bytes at %s", MAX_CORPUS, path);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read corpus file %s: %s; %s", path, strerror(errno),
                 CORPUS_HINT);
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* Text is UTF-8 (ASCII included) without NUL bytes (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). 0, or -1 and the first bad
 * byte's offset and line in err. */
static int check_text(const unsigned char *t, size_t n, const char *path, char *err, size_t errlen) {
    size_t line = 1;
    for (size_t i = 0; i < n;) {
        unsigned c = t[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        int ok = k > 0 && c != 0 && i + k <= n;
        uint32_t cp = k == 1 ? c : k ? c & (0x7Fu >> k) : 0;
        for (size_t j = 1; ok && j < k; j++) {
            ok = (t[i + j] & 0xC0) == 0x80;
            cp = cp << 6 | (t[i + j] & 0x3Fu);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && k > 1) ok = cp >= least[k] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
        if (!ok) {
            snprintf(err, errlen, "corpus %s is not text: %s at byte %zu (line %zu) (accepted: "
                     "UTF-8 or ASCII text without NUL bytes)", path,
                     c == 0 ? "a NUL byte" : "a byte that is not UTF-8", i, line);
            return -1;
        }
        line += c == '\n';
        i += k;
    }
    return 0;
}

/* path is a directory: append each comma-separated name of `files` in it. */
static int append_dir(unsigned char **buf, size_t *len, size_t *cap, const char *dir,
                      const char *files, char *err, size_t errlen) {
    char list[CFG_STR_MAX], file[2 * CFG_STR_MAX + 2];
    snprintf(list, sizeof list, "%s", files);
    int count = 0;
    for (char *save = NULL, *tok = strtok_r(list, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save), count++) {
        snprintf(file, sizeof file, "%s/%s", dir, tok);
        if (append_file(buf, len, cap, file, err, errlen) != 0) return -1;
    }
    if (count == 0) {
        snprintf(err, errlen, "corpus path %s is a directory but [transformer] files is empty; "
                              "list the files to read, or %s", dir, CORPUS_HINT);
        return -1;
    }
    return 0;
}

int transformer_data_load(TransformerData *d, const char *path, const char *files,
                          double val_fraction, int context, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot read corpus %s: %s; %s", path, strerror(errno),
                 CORPUS_HINT);
        return -1;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = S_ISDIR(st.st_mode) ? append_dir(&buf, &len, &cap, path, files, err, errlen)
                                 : append_file(&buf, &len, &cap, path, err, errlen);
    if (rc == 0 && len == 0) {
        snprintf(err, errlen, "corpus %s is empty (expected UTF-8 or ASCII text); %s", path,
                 CORPUS_HINT);
        rc = -1;
    }
    if (rc == 0) rc = check_text(buf, len, path, err, errlen);
    if (rc == 0) rc = transformer_data_from_text(d, buf, len, val_fraction, context, err, errlen);
    free(buf);
    return rc;
}

/* Vocabulary = distinct bytes of text[0, n_train), in byte order. */
static void build_vocab(TransformerData *d, const unsigned char *text) {
    int seen[256] = {0};
    for (size_t i = 0; i < d->n_train; i++) seen[text[i]] = 1;
    d->vocab = 0;
    for (int b = 0; b < 256; b++) {
        d->stoi[b] = seen[b] ? d->vocab : -1;
        if (seen[b]) d->itos[d->vocab++] = (unsigned char)b;
    }
    d->fallback = d->stoi[' '] >= 0 ? d->stoi[' '] : 0;
}

int transformer_data_from_text(TransformerData *d, const unsigned char *text, size_t n,
                               double val_fraction, int context, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    size_t n_val = (size_t)(val_fraction * (double)n), need = (size_t)context + 1;
    if (n > MAX_CORPUS || n - n_val < need || n_val < need) {
        snprintf(err, errlen,
                 "corpus of %zu bytes is too short: training (%zu) and validation (%zu, "
                 "val_fraction %g) parts each need at least context+1 = %zu bytes",
                 n, n - n_val, n_val, val_fraction, need);
        return -1;
    }
    d->n = n;
    d->n_train = n - n_val;
    build_vocab(d, text);
    d->tokens = xmalloc(n * sizeof *d->tokens);
    for (size_t i = 0; i < n; i++) {
        int id = d->stoi[text[i]];
        if (id < 0) d->unknown_val++;
        d->tokens[i] = id >= 0 ? id : d->fallback;
    }
    return 0;
}

void transformer_data_free(TransformerData *d) {
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

void transformer_sample_batch(const TransformerData *d, Rng *r, int B, int T, int *x, int *y) {
    ASSERT(d->n_train > (size_t)T, "training split of %zu tokens for windows of %d", d->n_train,
           T);
    uint32_t starts = (uint32_t)(d->n_train - (size_t)T); /* s + T <= n_train - 1 */
    for (int b = 0; b < B; b++) {
        const int *src = d->tokens + rng_below(r, starts);
        memcpy(x + (size_t)b * T, src, (size_t)T * sizeof *x);
        memcpy(y + (size_t)b * T, src + 1, (size_t)T * sizeof *y);
    }
}

void transformer_val_window(const TransformerData *d, int k, int count, int T, int *x, int *y) {
    size_t span = d->n - d->n_train - (size_t)T - 1; /* last start, relative to n_train */
    size_t s = d->n_train + (count > 1 ? (size_t)k * span / (size_t)(count - 1) : 0);
    ASSERT(k >= 0 && k < count && s + (size_t)T < d->n, "validation window %d of %d", k, count);
    memcpy(x, d->tokens + s, (size_t)T * sizeof *x);
    memcpy(y, d->tokens + s + 1, (size_t)T * sizeof *y);
}

/* ------------------------------------------------------------------- model */

static Tensor *add_param(Transformer *m, const char *name, int ndim, const int *shape) {
    return param_add(&m->ps, name, ndim, shape, ndim >= 2); /* decay: 2-D tensors only */
}

/* h<i>.<suffix>: a matrix [d0,d1], or a vector [d0] when d1 is 0. */
static Tensor *block_param(Transformer *m, int i, const char *suffix, int d0, int d1) {
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "h%d.%s", i, suffix);
    return d1 ? add_param(m, name, 2, (int[]){d0, d1}) : add_param(m, name, 1, (int[]){d0});
}

static void declare_block(Transformer *m, TransformerBlock *bl, int i) {
    int C = m->cfg.d_model;
    bl->ln1_w = block_param(m, i, "ln1.w", C, 0);
    bl->ln1_b = block_param(m, i, "ln1.b", C, 0);
    bl->w_qkv = block_param(m, i, "attn.w_qkv", 3 * C, C);
    bl->b_qkv = block_param(m, i, "attn.b_qkv", 3 * C, 0);
    bl->w_aproj = block_param(m, i, "attn.w_proj", C, C);
    bl->b_aproj = block_param(m, i, "attn.b_proj", C, 0);
    bl->ln2_w = block_param(m, i, "ln2.w", C, 0);
    bl->ln2_b = block_param(m, i, "ln2.b", C, 0);
    bl->w_fc = block_param(m, i, "mlp.w_fc", 4 * C, C);
    bl->b_fc = block_param(m, i, "mlp.b_fc", 4 * C, 0);
    bl->w_mproj = block_param(m, i, "mlp.w_proj", C, 4 * C);
    bl->b_mproj = block_param(m, i, "mlp.b_proj", C, 0);
}

/* GPT-2 init, in declaration order so a seed fixes every weight. Biases start
 * at 0 (param_alloc zeroes the buffers). */
static void init_params(Transformer *m, Rng *r) {
    float resid_std = INIT_STD / sqrtf(2.0f * (float)m->cfg.n_layer);
    param_init_normal(m->wte, r, 0.0f, INIT_STD);
    param_init_normal(m->wpe, r, 0.0f, INIT_STD);
    for (int i = 0; i < m->cfg.n_layer; i++) {
        TransformerBlock *bl = &m->blocks[i];
        param_init_const(bl->ln1_w, 1.0f);
        param_init_const(bl->ln2_w, 1.0f);
        param_init_normal(bl->w_qkv, r, 0.0f, INIT_STD);
        param_init_normal(bl->w_aproj, r, 0.0f, resid_std);
        param_init_normal(bl->w_fc, r, 0.0f, INIT_STD);
        param_init_normal(bl->w_mproj, r, 0.0f, resid_std);
    }
    param_init_const(m->lnf_w, 1.0f);
}

void transformer_build(Transformer *m, const TransformerConfig *cfg, int V, Rng *init_rng) {
    ASSERT(cfg->d_model % cfg->n_head == 0, "d_model %d not divisible by n_head %d",
           cfg->d_model, cfg->n_head);
    ASSERT(V >= 1 && cfg->context >= 1, "vocab %d, context %d", V, cfg->context);
    m->cfg = *cfg;
    m->vocab = V;
    int C = cfg->d_model;
    param_set_init(&m->ps, "model", 4 + 12 * cfg->n_layer);
    m->wte = add_param(m, "wte", 2, (int[]){V, C});
    m->wpe = add_param(m, "wpe", 2, (int[]){cfg->context, C});
    m->blocks = xcalloc((size_t)cfg->n_layer, sizeof *m->blocks);
    for (int i = 0; i < cfg->n_layer; i++) declare_block(m, &m->blocks[i], i);
    m->lnf_w = add_param(m, "lnf.w", 1, (int[]){C});
    m->lnf_b = add_param(m, "lnf.b", 1, (int[]){C});
    param_alloc(&m->ps);
    init_params(m, init_rng);
}

void transformer_free_params(Transformer *m) {
    param_set_free(&m->ps);
    free(m->blocks);
    m->blocks = NULL;
}

/* x + attn(ln1(x)), then + mlp(ln2(x)): one pre-LN block on x[B,T,C]. */
static Tensor *block_forward(const TransformerBlock *bl, Ctx *c, Tensor *x, int n_head) {
    Tensor *h = ad_layernorm(c, x, bl->ln1_w, bl->ln1_b, LN_EPS);
    Tensor *att = ad_attention(c, ad_linear(c, h, bl->w_qkv, bl->b_qkv), n_head);
    x = ad_add(c, x, ad_linear(c, att, bl->w_aproj, bl->b_aproj));
    h = ad_layernorm(c, x, bl->ln2_w, bl->ln2_b, LN_EPS);
    h = ad_gelu(c, ad_linear(c, h, bl->w_fc, bl->b_fc));
    return ad_add(c, x, ad_linear(c, h, bl->w_mproj, bl->b_mproj));
}

Tensor *transformer_logits(Transformer *m, Ctx *c, const int *idx, int B, int T) {
    ASSERT(T >= 1 && T <= m->cfg.context, "sequence of %d for context %d", T, m->cfg.context);
    int C = m->cfg.d_model;
    Tensor *tok = ad_reshape(c, ad_embedding(c, m->wte, idx, B * T), 3, (int[]){B, T, C});
    Tensor *x = ad_add(c, tok, ad_slice_rows(c, m->wpe, 0, T)); /* wpe[T,C] broadcast over B */
    for (int i = 0; i < m->cfg.n_layer; i++) x = block_forward(&m->blocks[i], c, x, m->cfg.n_head);
    x = ad_layernorm(c, x, m->lnf_w, m->lnf_b, LN_EPS);
    return ad_linear(c, ad_reshape(c, x, 2, (int[]){B * T, C}), m->wte, NULL); /* tied head */
}

Tensor *transformer_loss_on(Transformer *m, Ctx *c, const int *idx, const int *targets, int B,
                            int T) {
    return ad_cross_entropy(c, transformer_logits(m, c, idx, B, T), targets);
}

/* --------------------------------------------------------- ModelDef hooks */

static void *tf_create(Trainer *tr, const void *cfgp) {
    const TransformerConfig *cfg = cfgp;
    if (cfg->d_model % cfg->n_head != 0)
        die("[transformer] d_model = %d is not divisible by n_head = %d (accepted: n_head "
            "dividing d_model, e.g. 4 for 128)", cfg->d_model, cfg->n_head);
    Transformer *m = xcalloc(1, sizeof *m);
    char err[1024];
    if (transformer_data_load(&m->data, cfg->path, cfg->files, cfg->val_fraction, cfg->context,
                              err, sizeof err) != 0)
        die("%s", err);
    transformer_build(m, cfg, m->data.vocab, &tr->rng);
    m->batch = tr->train.batch_size;
    m->data_rng = &tr->rng;
    size_t BT = (size_t)m->batch * (size_t)cfg->context;
    m->xbuf = xmalloc(BT * sizeof *m->xbuf);
    m->ybuf = xmalloc(BT * sizeof *m->ybuf);
    trainer_add_group(tr, &m->ps);
    if (!tr->train.quiet)
        printf("transformer: %zu parameters; corpus %s: %zu bytes (%zu train, %zu validation), "
               "vocab %d, %zu validation bytes unseen in training\n",
               m->ps.n, cfg->path, m->data.n, m->data.n_train, m->data.n - m->data.n_train,
               m->data.vocab, m->data.unknown_val);
    return m;
}

static Tensor *tf_loss(void *mp, Ctx *c, Trainer *tr) {
    (void)tr;
    Transformer *m = mp;
    int T = m->cfg.context;
    transformer_sample_batch(&m->data, m->data_rng, m->batch, T, m->xbuf, m->ybuf);
    return transformer_loss_on(m, c, m->xbuf, m->ybuf, m->batch, T);
}

/* A data-parallel rank's draw of another rank's micro-batch: the same draws, no forward. */
static void tf_skip_batch(void *mp, Trainer *tr) {
    (void)tr;
    Transformer *m = mp;
    transformer_sample_batch(&m->data, m->data_rng, m->batch, m->cfg.context, m->xbuf, m->ybuf);
}

/* Mean loss over eval_batches fixed batches of evenly spaced validation windows. */
static double tf_evaluate(void *mp, Trainer *tr) {
    Transformer *m = mp;
    int T = m->cfg.context, B = m->batch, nb = m->cfg.eval_batches;
    double sum = 0.0;
    for (int e = 0; e < nb; e++) {
        for (int b = 0; b < B; b++)
            transformer_val_window(&m->data, e * B + b, nb * B, T, m->xbuf + (size_t)b * T,
                                   m->ybuf + (size_t)b * T);
        ctx_reset(&tr->ctx);
        sum += transformer_loss_on(m, &tr->ctx, m->xbuf, m->ybuf, B, T)->data[0];
    }
    return sum / nb;
}

/* The best context-free predictor: the entropy of the training text's byte
 * frequencies (nats). A model below this line is using its context. */
static double tf_baseline(const void *mp) {
    const Transformer *m = mp;
    const TransformerData *d = &m->data;
    size_t *count = xcalloc((size_t)d->vocab, sizeof *count);
    for (size_t i = 0; i < d->n_train; i++) count[d->tokens[i]]++;
    double h = 0.0;
    for (int v = 0; v < d->vocab; v++)
        if (count[v]) {
            double p = (double)count[v] / (double)d->n_train;
            h -= p * log(p);
        }
    free(count);
    return h;
}

/* Draw from softmax(logits / temperature) (argmax at temperature 0). */
static int sample_token(const float *logits, int V, double temperature, Rng *r) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature <= 0.0) return best;
    double total = 0.0, cum = 0.0;
    for (int v = 0; v < V; v++) total += exp((logits[v] - logits[best]) / temperature);
    double u = rng_uniform(r) * total;
    for (int v = 0; v < V; v++) {
        cum += exp((logits[v] - logits[best]) / temperature);
        if (u < cum) return v;
    }
    return best; /* rounding: u landed on the total */
}

/* Encode the prompt (empty: a newline); returns its length in tok. */
static int encode_prompt(const Transformer *m, const char *prompt, int *tok) {
    const char *p = prompt[0] ? prompt : "\n";
    int n = 0;
    for (; p[n]; n++) {
        int id = m->data.stoi[(unsigned char)p[n]];
        tok[n] = id >= 0 ? id : m->data.fallback;
    }
    return n;
}

/* A sampled byte for the terminal: control characters other than newline and
 * tab are shown escaped (\x07), never sent raw (fortunes hold BEL and
 * backspace; a text corpus may hold escape sequences). */
static void put_sample_byte(unsigned char c) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) printf("\\x%02x", c);
    else putchar(c);
}

/* After training: print sample_chars generated characters, re-running the
 * model (no-grad) on the last `context` characters for each new one. */
static void tf_finish(void *mp, Trainer *tr) {
    Transformer *m = mp;
    const TransformerConfig *cfg = &m->cfg;
    if (cfg->sample_chars <= 0) return;
    int *tok = xmalloc((strlen(cfg->sample_prompt) + 1 + (size_t)cfg->sample_chars) * sizeof *tok);
    int n = encode_prompt(m, cfg->sample_prompt, tok);
    Rng r;
    rng_seed(&r, (uint64_t)tr->run.seed, 7); /* its own stream: the sample is seeded */
    printf("%s: sample (temperature %g, seed %ld):\n%s", tr->run.name, cfg->temperature,
           tr->run.seed, cfg->sample_prompt);
    int prev = ctx_set_grad(&tr->ctx, 0);
    for (int i = 0; i < cfg->sample_chars; i++) {
        ctx_reset(&tr->ctx);
        int T = n < cfg->context ? n : cfg->context;
        Tensor *lg = transformer_logits(m, &tr->ctx, tok + n - T, 1, T);
        tok[n] = sample_token(lg->data + (size_t)(T - 1) * m->vocab, m->vocab, cfg->temperature,
                              &r);
        put_sample_byte(m->data.itos[tok[n++]]);
    }
    ctx_reset(&tr->ctx);
    ctx_set_grad(&tr->ctx, prev);
    printf("\n");
    fflush(stdout);
    free(tok);
}

/* Checkpoint state besides parameters: none is needed to resume (batches come
 * from tr->rng, which the trainer saves), so this records the vocabulary and
 * the split, and load refuses a checkpoint taken on other data. */
#define TF_STATE_MAGIC 0x31534654u /* "TFS1" */

static int tf_save_state(const void *mp, FILE *f) {
    const Transformer *m = mp;
    uint32_t hdr[2] = {TF_STATE_MAGIC, (uint32_t)m->data.vocab};
    uint64_t split[2] = {m->data.n, m->data.n_train};
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1 && fwrite(split, sizeof split, 1, f) == 1 &&
             fwrite(m->data.itos, 1, (size_t)m->data.vocab, f) == (size_t)m->data.vocab;
    return ok ? 0 : -1;
}

static int tf_load_state(void *mp, FILE *f) {
    const Transformer *m = mp;
    uint32_t hdr[2];
    uint64_t split[2];
    unsigned char itos[256];
    if (fread(hdr, sizeof hdr, 1, f) != 1 || hdr[0] != TF_STATE_MAGIC || hdr[1] > 256 ||
        fread(split, sizeof split, 1, f) != 1 || fread(itos, 1, hdr[1], f) != hdr[1]) {
        fprintf(stderr, "cliplab: error: transformer checkpoint state is truncated or not ours\n");
        return -1;
    }
    if ((int)hdr[1] != m->data.vocab || split[0] != m->data.n || split[1] != m->data.n_train ||
        memcmp(itos, m->data.itos, hdr[1]) != 0) {
        fprintf(stderr, "cliplab: error: transformer checkpoint was taken on another corpus "
                        "(vocab %u, %llu bytes, %llu for training; now vocab %d, %zu bytes, %zu "
                        "for training)\n",
                hdr[1], (unsigned long long)split[0], (unsigned long long)split[1], m->data.vocab,
                m->data.n, m->data.n_train);
        return -1;
    }
    return 0;
}

static void tf_title(const void *mp, char *buf, size_t len) {
    const Transformer *m = mp;
    snprintf(buf, len, "Small GPT (%d layers, width %d), fortunes characters", m->cfg.n_layer,
             m->cfg.d_model);
}

static void tf_destroy(void *mp) {
    Transformer *m = mp;
    transformer_free_params(m);
    transformer_data_free(&m->data);
    free(m->xbuf), free(m->ybuf);
    free(m);
}

const ModelDef transformer_model = {
    .name = "transformer",
    .summary = "decoder-only character-level GPT (pre-LN, tied head) on Debian's fortunes",
    .section = &tf_section,
    .cfg_size = sizeof(TransformerConfig),
    .create = tf_create,
    .loss = tf_loss,
    .skip_batch = tf_skip_batch,
    .evaluate = tf_evaluate,
    .baseline_loss = tf_baseline,
    .finish = tf_finish,
    .save_state = tf_save_state,
    .load_state = tf_load_state,
    .destroy = tf_destroy,
    .title = tf_title,
};

/* transformer.h: a small decoder-only GPT (Radford et al. 2019, GPT-2 layout)
 * trained as LLMs are, on character-level language modelling of a real English
 * corpus (Debian's fortune cookie files, see data/README.md).
 *
 * Dimension legend: B batch, T time (<= context), C d_model, NH heads,
 * hd = C/NH head dim, V vocab (distinct bytes of the training text), L layers.
 *
 *   x = wte[idx] + wpe[0..T)                                  [B,T,C]
 *   per block (pre-LayerNorm):
 *     x = x + attn_proj(attention(ln1(x) W_qkv^T + b_qkv))     causal, NH heads
 *     x = x + mlp_proj(gelu(ln2(x) W_fc^T + b_fc))             W_fc [4C,C]
 *   logits = lnf(x) wte^T                                     [B*T,V]
 * The head is TIED to the token embedding (GPT-2, Press & Wolf 2017): wte
 * receives gradient from both its uses, and there is no separate head matrix.
 *
 * Init (GPT-2 / nanoGPT / llm.c): every matrix and both embeddings ~ N(0, 0.02),
 * the two residual projections per block ~ N(0, 0.02/sqrt(2L)), biases 0,
 * LayerNorm weight 1 and bias 0.
 * Weight decay (Param.decay): every 2-D tensor (matrices and both embeddings,
 * nanoGPT's "dim >= 2" rule); never biases or LayerNorm parameters. */
#ifndef CLIPLAB_MODELS_TRANSFORMER_H
#define CLIPLAB_MODELS_TRANSFORMER_H

#include <stddef.h>

#include "config.h"
#include "model.h"
#include "params.h"
#include "rng.h"

typedef struct TransformerConfig {
    int d_model;                       /* C */
    int n_layer;                       /* L */
    int n_head;                        /* NH; C % NH == 0 */
    int context;                       /* T: training window and longest input */
    char path[CFG_STR_MAX];            /* a text file, or a directory (see files) */
    char files[CFG_STR_MAX];           /* directory path: comma-separated names in it */
    double val_fraction;               /* last fraction of the text held out */
    int eval_batches;                  /* batches of [train] batch_size windows for val_loss */
    int sample_chars;                  /* characters generated after training (0 = none) */
    double temperature;                /* sampling temperature (0 = greedy) */
    char sample_prompt[CFG_STR_MAX];   /* text the sample continues ("" = a newline) */
} TransformerConfig;

extern const ModelDef transformer_model;

/* The corpus as token ids. Vocabulary: the distinct bytes of the TRAINING
 * part, sorted; a byte of the validation part (or of a prompt) that training
 * never saw maps to `fallback` (the id of ' ' if present, else 0). */
typedef struct TransformerData {
    int *tokens;                       /* n ids, the whole text */
    size_t n, n_train;                 /* train = [0, n_train), validation = [n_train, n) */
    int vocab;                         /* V */
    unsigned char itos[256];           /* id -> byte */
    int stoi[256];                     /* byte -> id, -1 if absent from training */
    int fallback;
    size_t unknown_val;                /* validation bytes mapped to fallback */
} TransformerData;

/* Read path (a file; or a directory and the comma-separated `files` in it,
 * concatenated in the given order), split it and build the vocabulary.
 * Returns 0, or -1 with a message in err (missing, unreadable or too short). */
int transformer_data_load(TransformerData *d, const char *path, const char *files,
                          double val_fraction, int context, char *err, size_t errlen);
/* The same from text in memory; both splits need at least context+1 bytes. */
int transformer_data_from_text(TransformerData *d, const unsigned char *text, size_t n,
                               double val_fraction, int context, char *err, size_t errlen);
void transformer_data_free(TransformerData *d);

typedef struct TransformerBlock {
    Tensor *ln1_w, *ln1_b, *w_qkv, *b_qkv, *w_aproj, *b_aproj;
    Tensor *ln2_w, *ln2_b, *w_fc, *b_fc, *w_mproj, *b_mproj;
} TransformerBlock;

typedef struct Transformer {
    TransformerConfig cfg;
    int vocab, batch;
    ParamSet ps;
    Tensor *wte, *wpe, *lnf_w, *lnf_b;
    TransformerBlock *blocks;          /* [n_layer] */
    TransformerData data;
    Rng *data_rng;                     /* the trainer's stream: windows are drawn from it */
    int *xbuf, *ybuf;                  /* one batch of inputs / targets [B*T] */
} Transformer;

/* Declare, allocate and initialise the parameters for a vocabulary of V
 * (no trainer, no data needed). Names: wte, wpe, h<i>.ln1.w, h<i>.ln1.b,
 * h<i>.attn.w_qkv, h<i>.attn.b_qkv, h<i>.attn.w_proj, h<i>.attn.b_proj,
 * h<i>.ln2.w, h<i>.ln2.b, h<i>.mlp.w_fc, h<i>.mlp.b_fc, h<i>.mlp.w_proj,
 * h<i>.mlp.b_proj, lnf.w, lnf.b. Shape errors in cfg are ASSERTs (the
 * config table and create() validate user input first). */
void transformer_build(Transformer *m, const TransformerConfig *cfg, int V, Rng *init_rng);
void transformer_free_params(Transformer *m);
/* Logits [B*T, V] of idx[B*T] (T <= context), recorded on c. */
Tensor *transformer_logits(Transformer *m, Ctx *c, const int *idx, int B, int T);
/* Mean next-token cross-entropy of idx[B*T] against targets[B*T]. */
Tensor *transformer_loss_on(Transformer *m, Ctx *c, const int *idx, const int *targets, int B,
                            int T);
/* Draw B random training windows (start uniform over the training split):
 * x[b,t] = text[s_b + t], y[b,t] = text[s_b + t + 1]. */
void transformer_sample_batch(const TransformerData *d, Rng *r, int B, int T, int *x, int *y);
/* Validation window k of `count` (evenly spaced over the validation split). */
void transformer_val_window(const TransformerData *d, int k, int count, int T, int *x, int *y);

#endif

/* clipper.c: the [clip] section and the trainer's clip step (see clipper.h).
 * The mathematics is clip.c's; this file maps ParamSets onto ClipTensor views,
 * dispatches on the configured method and measures what the step did. */
#include "clipper.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "common.h"

static const char *const method_choices[] = {"none", "global_norm", NULL};

#define CLIP_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(ClipConfig, f), d, lo, hi, ch, h}
static const CfgKey clip_keys[] = {
    CLIP_KEY("grad", CFG_ENUM, grad, "none", 0, 0, method_choices,
             "gradient clipping method, applied after backward and before the optimizer step"),
    CLIP_KEY("max_norm", CFG_DOUBLE, max_norm, "1", 0, 1e30, NULL,
             "global_norm: rescale when the total norm exceeds this (Pascanu et al. 2013)"),
    CLIP_KEY("norm_type", CFG_NORM, norm_type, "2", 1e-6, 1e6, NULL,
             "p of the norm for global_norm: any p > 0, or inf (max |g|)"),
};
const CfgSection clip_config_section = {"clip", clip_keys,
                                        (int)(sizeof clip_keys / sizeof *clip_keys),
                                        "gradient and weight clipping"};

void clipper_init(Clipper *cl, const ClipConfig *cfg, ParamSet *ps) {
    memset(cl, 0, sizeof *cl);
    cl->cfg = *cfg;
    cl->ps = ps;
    cl->all = xcalloc((size_t)ps->count, sizeof *cl->all);
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->params[i];
        if (p->buffer) continue;
        cl->all[cl->count++] = (ClipTensor){p->t.grad, p->t.data, p->t.n,
                                            (size_t)(p->t.ndim > 1 ? p->t.shape[0] : 1)};
    }
}

void clipper_free(Clipper *cl) {
    free(cl->all);
    cl->all = NULL;
}

double clipper_global_norm(const Clipper *cl) { return clip_total_norm(cl->all, cl->count, 2.0); }

void clipper_apply(Clipper *cl, double pre_l2, ClipStats *st) {
    st->pre_norm = pre_l2;
    st->threshold = NAN;
    st->clipped = 0;
    switch ((ClipMethod)cl->cfg.grad) {
    case CLIP_NONE:
        break;
    case CLIP_GLOBAL_NORM: {
        double total = cl->cfg.norm_type == 2.0 ? pre_l2
                                                : clip_total_norm(cl->all, cl->count,
                                                                  cl->cfg.norm_type);
        clip_grads_with_norm(cl->all, cl->count, cl->cfg.max_norm, total);
        st->threshold = cl->cfg.max_norm;
        st->clipped = total + 1e-6 > cl->cfg.max_norm;
        break;
    }
    }
    st->post_norm = st->clipped ? clipper_global_norm(cl) : pre_l2;
    st->coef = pre_l2 > 0 ? st->post_norm / pre_l2 : 1.0;
}

void clipper_clamp_weights(Clipper *cl) { (void)cl; }

void clipper_describe(const ClipConfig *cfg, char *buf, size_t len) {
    switch ((ClipMethod)cfg->grad) {
    case CLIP_NONE:
        snprintf(buf, len, "none");
        break;
    case CLIP_GLOBAL_NORM:
        if (cfg->norm_type == 2.0)
            snprintf(buf, len, "global L2 norm %g", cfg->max_norm);
        else
            snprintf(buf, len, "global L%g norm %g", cfg->norm_type, cfg->max_norm);
        break;
    }
}

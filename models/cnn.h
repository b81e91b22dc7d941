/* cnn.h: the small CNN of Papernot et al. 2021 ("Tempered sigmoid activations
 * for deep learning with differential privacy") and Tramer and Boneh 2021
 * (ftramer/Handcrafted-DP, the end-to-end CNN), on Fashion-MNIST through the
 * shared image data (imageset.h). It is the network of the DP-SGD demo
 * (docs/dp.md): every parameter sits in a conv2d or a linear layer, which is
 * what the per-example gradients of DP-SGD support (perex.h).
 *
 * Dimension legend: B batch; shapes for 28x28 images.
 *   conv1  Conv(1 -> 16, 8x8, stride 2, pad 2)   [B,16,13,13]  act
 *   pool1  MaxPool(2, stride 1)                  [B,16,12,12]
 *   conv2  Conv(16 -> 32, 4x4, stride 2)         [B,32,5,5]    act
 *   pool2  MaxPool(2, stride 1)                  [B,32,4,4] -> [B,512]
 *   fc1    Linear(512 -> 32)                     act
 *   fc2    Linear(32 -> 10)                      logits
 * act = tanh (the papers': bounded, so per-example gradients stay small) or
 * relu. Init: PyTorch's defaults for Conv2d and Linear, U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)) for weights and biases. 26,010 parameters. */
#ifndef CLIPLAB_MODELS_CNN_H
#define CLIPLAB_MODELS_CNN_H

#include "config.h"
#include "imageset.h"
#include "model.h"

typedef enum { CNN_TANH, CNN_RELU } CnnActivation;

typedef struct CnnConfig {
    int act;                      /* CnnActivation */
    ImageSetConfig data;
} CnnConfig;

extern const ModelDef cnn_model;

struct RunResult;
/* cnn_plots.c: the DP-SGD comparison figures (ModelDef.compare_plot). */
int cnn_compare_plot(const struct RunResult *runs, const void *const *cfgs, int n, const char *path);

#endif

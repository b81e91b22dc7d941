/* registry.c: the models ./train can build, by [model] type name. The first
 * entry is the default. Adding a model = one file in models/ and one line here. */
#include "cliff.h"
#include "cnn.h"
#include "model.h"
#include "ppo.h"
#include "rnn.h"
#include "mobilenet.h"
#include "transformer.h"
#include "wgan.h"

const ModelDef *const model_registry[] = {&rnn_model, &transformer_model, &wgan_model, &ppo_model,
                                         &mobilenet_model, &cliff_model, &cnn_model};
const int model_registry_count = (int)(sizeof model_registry / sizeof *model_registry);


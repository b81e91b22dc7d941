/* registry.c: the models ./train can build, by [model] type name; the first
 * is the default. Adding a model: its file in models/ defines
 * `const ModelDef <name>_model` (model.h says what goes in it), and one line
 * of MODELS below names it; nothing else in the program lists models. */
#include "model.h"

#define MODELS(X)  \
    X(rnn)         \
    X(transformer) \
    X(wgan)        \
    X(ppo)         \
    X(mobilenet)   \
    X(cliff)       \
    X(mlp)         \
    X(cnn)

#define MODEL_DECLARE(name) extern const ModelDef name##_model;
#define MODEL_ENTRY(name) &name##_model,
MODELS(MODEL_DECLARE)

const ModelDef *const model_registry[] = {MODELS(MODEL_ENTRY)};
const int model_registry_count = (int)(sizeof model_registry / sizeof *model_registry);

/* registry.c: the models ./train can build, by [model] type name. The first
 * entry is the default. Adding a model = one file in models/ and one line here. */
#include <string.h>

#include "../src/model.h"
#include "rnn.h"
#include "transformer.h"

const ModelDef *const model_registry[] = {&rnn_model, &transformer_model};
const int model_registry_count = (int)(sizeof model_registry / sizeof *model_registry);

const ModelDef *model_find(const char *name) {
    for (int i = 0; i < model_registry_count; i++)
        if (strcmp(model_registry[i]->name, name) == 0) return model_registry[i];
    return NULL;
}

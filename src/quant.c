/*
 * quant: the table of GGUF tensor types (block size and bytes per block), checked at compile time
 * against the block structs in quant.h. The table is the one the file format defines (ggml's
 * type_traits; the `gguf` Python package's GGML_QUANT_SIZES, which tests compare against).
 */
#include "quant.h"

#include <assert.h>

static_assert(sizeof(BlockQ4_0) == 18, "BlockQ4_0 layout");
static_assert(sizeof(BlockQ4_1) == 20, "BlockQ4_1 layout");
static_assert(sizeof(BlockQ5_0) == 22, "BlockQ5_0 layout");
static_assert(sizeof(BlockQ5_1) == 24, "BlockQ5_1 layout");
static_assert(sizeof(BlockQ8_0) == 34, "BlockQ8_0 layout");
static_assert(sizeof(BlockQ4_K) == 144, "BlockQ4_K layout");
static_assert(sizeof(BlockQ5_K) == 176, "BlockQ5_K layout");
static_assert(sizeof(BlockQ6_K) == 210, "BlockQ6_K layout");

static const QuantTraits TRAITS[QT_COUNT] = {
    [QT_F32] = {"F32", 1, 4},
    [QT_F16] = {"F16", 1, 2},
    [QT_Q4_0] = {"Q4_0", QK4_0, sizeof(BlockQ4_0)},
    [QT_Q4_1] = {"Q4_1", QK4_1, sizeof(BlockQ4_1)},
    [QT_Q5_0] = {"Q5_0", QK5_0, sizeof(BlockQ5_0)},
    [QT_Q5_1] = {"Q5_1", QK5_1, sizeof(BlockQ5_1)},
    [QT_Q8_0] = {"Q8_0", QK8_0, sizeof(BlockQ8_0)},
    /* QT_Q8_1 deliberately absent: an in-memory type never written to model files. */
    [QT_Q2_K] = {"Q2_K", QK_K, 84},
    [QT_Q3_K] = {"Q3_K", QK_K, 110},
    [QT_Q4_K] = {"Q4_K", QK_K, sizeof(BlockQ4_K)},
    [QT_Q5_K] = {"Q5_K", QK_K, sizeof(BlockQ5_K)},
    [QT_Q6_K] = {"Q6_K", QK_K, sizeof(BlockQ6_K)},
    [QT_Q8_K] = {"Q8_K", QK_K, 292},
    [QT_IQ2_XXS] = {"IQ2_XXS", QK_K, 66},
    [QT_IQ2_XS] = {"IQ2_XS", QK_K, 74},
    [QT_IQ3_XXS] = {"IQ3_XXS", QK_K, 98},
    [QT_IQ1_S] = {"IQ1_S", QK_K, 50},
    [QT_IQ4_NL] = {"IQ4_NL", 32, 18},
    [QT_IQ3_S] = {"IQ3_S", QK_K, 110},
    [QT_IQ2_S] = {"IQ2_S", QK_K, 82},
    [QT_IQ4_XS] = {"IQ4_XS", QK_K, 136},
    [QT_I8] = {"I8", 1, 1},
    [QT_I16] = {"I16", 1, 2},
    [QT_I32] = {"I32", 1, 4},
    [QT_I64] = {"I64", 1, 8},
    [QT_F64] = {"F64", 1, 8},
    [QT_IQ1_M] = {"IQ1_M", QK_K, 56},
    [QT_BF16] = {"BF16", 1, 2},
    [QT_TQ1_0] = {"TQ1_0", QK_K, 54},
    [QT_TQ2_0] = {"TQ2_0", QK_K, 66},
    [QT_MXFP4] = {"MXFP4", 32, 17},
};

const QuantTraits *quant_traits(uint32_t type) {
    if (type >= QT_COUNT || TRAITS[type].name == NULL) return NULL;
    return &TRAITS[type];
}

const char *quant_name(uint32_t type) {
    const QuantTraits *t = quant_traits(type);
    return t ? t->name : "?";
}

/* train_desc.c: the description of a training model.so (cnnc/abi.h RtTrain): the
 * three models it links, the tensors an instance keeps with their initial values,
 * the loss and the optimizer. Built as constants in the grad model's module; the
 * initial values stay out of LLVM, in a blob the linker embeds. */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>

#include "cg.h"
#include "cnnc/abi.h"

#define INIT_ALIGN 64

/* An external, hidden symbol of the shared object (another module's model, the blob). */
static LLVMValueRef external(Cg *cg, const char *name)
{
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMArrayType(LLVMInt8TypeInContext(cg->ctx), 0), name);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetVisibility(g, LLVMHiddenVisibility);
    return g;
}

static LLVMTypeRef param_type(Cg *cg)
{
    LLVMTypeRef f[5] = {cg->t_ptr, cg->t_i32, cg->t_i32, LLVMArrayType(cg->t_i64, RT_MAX_RANK),
                        cg->t_i64};
    return LLVMStructTypeInContext(cg->ctx, f, 5, 0);
}

static LLVMTypeRef train_type(Cg *cg)
{
    LLVMTypeRef i32 = cg->t_i32, p = cg->t_ptr, f32 = cg->t_f32;
    LLVMTypeRef f[16] = {i32, i32, i32, i32, p, p, p, p, p, cg->t_i64, i32, i32, i32, f32, f32, f32};
    return LLVMStructTypeInContext(cg->ctx, f, 16, 0);
}

static void check_train_layout(Cg *cg)
{
    static const size_t param_at[5] = {offsetof(RtTrainParam, name), offsetof(RtTrainParam, rank),
                                       offsetof(RtTrainParam, kind), offsetof(RtTrainParam, dims),
                                       offsetof(RtTrainParam, init)};
    static const size_t at[16] = {
        offsetof(RtTrain, abi_version), offsetof(RtTrain, nparams), offsetof(RtTrain, ntrainable),
        offsetof(RtTrain, nstate), offsetof(RtTrain, grad), offsetof(RtTrain, apply),
        offsetof(RtTrain, eval), offsetof(RtTrain, params), offsetof(RtTrain, init),
        offsetof(RtTrain, init_bytes), offsetof(RtTrain, loss), offsetof(RtTrain, classes),
        offsetof(RtTrain, optim), offsetof(RtTrain, lr), offsetof(RtTrain, beta1),
        offsetof(RtTrain, beta2)};
    cg_check_layout(cg, param_type(cg), "RtTrainParam", param_at, 5, sizeof(RtTrainParam));
    cg_check_layout(cg, train_type(cg), "RtTrain", at, 16, sizeof(RtTrain));
}

/* The initial values of every tensor that has some, each at a 64-byte-aligned offset
 * (offsets[i], -1 for zeros). */
static CgLinkData init_blob(const CgTrain *t, int64_t *offsets)
{
    int32_t n = t->nparams + t->nstate;
    uint64_t size = 0;
    for (int32_t i = 0; i < n; i++) {
        offsets[i] = -1;
        if (!t->params[i].init) continue;
        size = (size + INIT_ALIGN - 1) / INIT_ALIGN * INIT_ALIGN;
        offsets[i] = (int64_t)size;
        size += (uint64_t)ir_numel(&t->params[i].type) * sizeof(float);
    }
    char *bytes = ir_xcalloc(size ? size : 1, 1);
    for (int32_t i = 0; i < n; i++)
        if (offsets[i] >= 0)
            memcpy(bytes + offsets[i], t->params[i].init,
                   (size_t)ir_numel(&t->params[i].type) * sizeof(float));
    return (CgLinkData){CG_TRAIN_INIT_SYMBOL, bytes, size};
}

static LLVMValueRef param_table(Cg *cg, const CgTrain *t, const int64_t *offsets)
{
    int32_t n = t->nparams + t->nstate;
    LLVMValueRef *elems = ir_xcalloc((size_t)n + 1, sizeof *elems);
    for (int32_t i = 0; i < n; i++) {
        const CgTrainParam *p = &t->params[i];
        LLVMValueRef dims[RT_MAX_RANK];
        for (int32_t k = 0; k < RT_MAX_RANK; k++)
            dims[k] = cg_i64(cg, k < p->type.rank ? p->type.dims[k] : 0);
        LLVMValueRef f[5] = {cg_const_string(cg, p->name),
                             LLVMConstInt(cg->t_i32, (unsigned)p->type.rank, 0),
                             LLVMConstInt(cg->t_i32, (unsigned)p->kind, 0),
                             LLVMConstArray(cg->t_i64, dims, RT_MAX_RANK), cg_i64(cg, offsets[i])};
        elems[i] = LLVMConstNamedStruct(param_type(cg), f, 5);
    }
    LLVMValueRef init = LLVMConstArray(param_type(cg), elems, (unsigned)n);
    free(elems);
    LLVMValueRef gv = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), "train_params");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

CgLinkData cg_add_train(Cg *grad, const CgTrain *t)
{
    Cg *cg = grad;
    if (strcmp(cg->name, "grad") != 0) ICE("the training description belongs to the grad model");
    check_train_layout(cg);
    int64_t *offsets = ir_xcalloc((size_t)(t->nparams + t->nstate) + 1, sizeof *offsets);
    CgLinkData blob = init_blob(t, offsets);
    LLVMTypeRef i32 = cg->t_i32;
    LLVMValueRef model = LLVMGetNamedGlobal(cg->mod, CG_MODEL_SYMBOL "_grad");
    if (!model) ICE("the grad module defines no " CG_MODEL_SYMBOL "_grad");
    LLVMValueRef v[16] = {
        LLVMConstInt(i32, RT_ABI_VERSION, 0),
        LLVMConstInt(i32, (unsigned)t->nparams, 0),
        LLVMConstInt(i32, (unsigned)t->ntrainable, 0),
        LLVMConstInt(i32, (unsigned)t->nstate, 0),
        model,
        external(cg, CG_MODEL_SYMBOL "_apply"),
        external(cg, CG_MODEL_SYMBOL "_eval"),
        param_table(cg, t, offsets),
        blob.size ? external(cg, CG_TRAIN_INIT_SYMBOL) : LLVMConstNull(cg->t_ptr),
        cg_i64(cg, (int64_t)blob.size),
        LLVMConstInt(i32, (unsigned)t->loss, 0),
        LLVMConstInt(i32, (unsigned)t->classes, 0),
        LLVMConstInt(i32, (unsigned)t->optim, 0),
        LLVMConstReal(cg->t_f32, t->lr),
        LLVMConstReal(cg->t_f32, t->beta1),
        LLVMConstReal(cg->t_f32, t->beta2),
    };
    free(offsets);
    LLVMTypeRef tt = train_type(cg);
    LLVMValueRef gv = LLVMAddGlobal(cg->mod, tt, CG_TRAIN_SYMBOL);
    LLVMSetInitializer(gv, LLVMConstNamedStruct(tt, v, 16));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetVisibility(gv, LLVMHiddenVisibility);
    LLVMSetAlignment(gv, 8);
    char *msg = NULL;
    if (LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &msg))
        ICE("the training description is invalid: %s", msg);
    LLVMDisposeMessage(msg);
    return blob;
}

static const char *const model_names[3] = {"grad", "apply", "eval"};

bool cg_train_lower(CgTrainModel *m, Graph *const graphs[3], const CgTrain *t,
                    const CgTarget *target, Diag *d)
{
    memset(m, 0, sizeof *m);
    CgTarget named = target ? *target : (CgTarget){.opt_level = 2};
    for (int32_t i = 0; i < 3; i++) {
        named.name = model_names[i];
        m->nlowered = i + 1; /* cg_free'd even when lowering fails */
        if (!cg_lower(&m->cg[i], graphs[i], &named, d)) return false;
    }
    m->init = cg_add_train(&m->cg[0], t);
    return true;
}

bool cg_train_link(CgTrainModel *m, const char *runtime, const char *out, char *err, size_t n)
{
    Cg *cgs[3] = {&m->cg[0], &m->cg[1], &m->cg[2]};
    return cg_link_modules(cgs, 3, &m->init, 1, runtime, out, err, n);
}

void cg_train_free(CgTrainModel *m)
{
    for (int32_t i = 0; i < m->nlowered; i++)
        cg_free(&m->cg[i]);
    free((void *)m->init.bytes);
    memset(m, 0, sizeof *m);
}

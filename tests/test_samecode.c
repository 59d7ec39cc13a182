/* test_samecode.c: cg_same_code, which tells the code generator that two kernels are
 * one. A kernel built twice under two names is the same code; one that differs from it
 * in any single property (a predicate, an alignment, volatility, a shuffle mask, a
 * metadata node, the order of operands or PHI blocks, a constant, inbounds, a tail
 * call, a block more) is not. The zoo models themselves are checked against printed IR
 * in test_codegen (CNNC_CHECK_DEDUP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <stdio.h>

#include "cg.h"

enum {
    BASE,
    PREDICATE,
    ALIGNMENT,
    VOLATILE,
    MASK,
    METADATA,
    SWAPPED,
    PHI_ORDER,
    CONSTANT,
    INBOUNDS,
    TAIL_CALL,
    EXTRA_BLOCK,
    NVARIANTS
};

typedef struct Ctx {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMTypeRef f32, i64, ptr, v8, fnty, fma_ty;
    LLVMValueRef fma;
} Ctx;

/* void NAME(ptr x, i64 n, i64 m): y = fma(x[0..8] < k ? x : 0, ...) stored back, a
 * branch on n < m joined by a PHI. */
static LLVMValueRef build(Ctx *c, const char *name, int v)
{
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, c->fnty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(c->ctx);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef left = LLVMAppendBasicBlockInContext(c->ctx, fn, "left");
    LLVMBasicBlockRef right = LLVMAppendBasicBlockInContext(c->ctx, fn, "right");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, fn, "join");
    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef x = LLVMGetParam(fn, 0), n = LLVMGetParam(fn, 1), m = LLVMGetParam(fn, 2);
    LLVMValueRef idx = LLVMConstInt(c->i64, 8, 0);
    LLVMValueRef p = LLVMBuildGEP2(b, c->f32, x, &idx, 1, "p");
    LLVMSetIsInBounds(p, v != INBOUNDS);
    LLVMValueRef ld = LLVMBuildLoad2(b, c->v8, p, "ld");
    LLVMSetAlignment(ld, v == ALIGNMENT ? 16 : 32);
    LLVMSetVolatile(ld, v == VOLATILE);
    if (v == METADATA) {
        unsigned kind = LLVMGetMDKindIDInContext(c->ctx, "invariant.load", 14);
        LLVMSetMetadata(ld, kind, LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, NULL, 0)));
    }
    LLVMValueRef k = LLVMConstVector((LLVMValueRef[]){LLVMConstReal(c->f32, v == CONSTANT ? 3 : 2)}, 1);
    LLVMValueRef kk = LLVMBuildShuffleVector(b, k, LLVMGetUndef(LLVMTypeOf(k)),
                                             LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(c->ctx), 8)), "");
    LLVMValueRef lt = LLVMBuildFCmp(b, LLVMRealOLT, ld, kk, "");
    LLVMValueRef sel = LLVMBuildSelect(b, lt, ld, LLVMConstNull(c->v8), "");
    LLVMValueRef mask[8];
    for (int i = 0; i < 8; i++)
        mask[i] = LLVMConstInt(LLVMInt32TypeInContext(c->ctx), (unsigned)(v == MASK ? 7 - i : i), 0);
    LLVMValueRef sh = LLVMBuildShuffleVector(b, sel, ld, LLVMConstVector(mask, 8), "");
    LLVMValueRef args[3] = {v == SWAPPED ? ld : sh, v == SWAPPED ? sh : ld, sel};
    LLVMValueRef y = LLVMBuildCall2(b, c->fma_ty, c->fma, args, 3, "");
    LLVMSetTailCall(y, v == TAIL_CALL);
    LLVMSetAlignment(LLVMBuildStore(b, y, x), 32);
    LLVMValueRef cond = LLVMBuildICmp(b, v == PREDICATE ? LLVMIntSLE : LLVMIntSLT, n, m, "");
    LLVMBuildCondBr(b, cond, left, right);
    LLVMPositionBuilderAtEnd(b, left);
    LLVMValueRef a1 = LLVMBuildAdd(b, n, LLVMConstInt(c->i64, 1, 0), "");
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, right);
    LLVMValueRef a2 = LLVMBuildSub(b, m, LLVMConstInt(c->i64, 1, 0), "");
    if (v == EXTRA_BLOCK) {
        LLVMBasicBlockRef more = LLVMAppendBasicBlockInContext(c->ctx, fn, "more");
        LLVMMoveBasicBlockBefore(more, join);
        LLVMBuildBr(b, more);
        LLVMPositionBuilderAtEnd(b, more);
    }
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
    LLVMValueRef phi = LLVMBuildPhi(b, c->i64, "");
    LLVMBasicBlockRef from_right = v == EXTRA_BLOCK ? LLVMGetPreviousBasicBlock(join) : right;
    LLVMValueRef vals[2] = {a1, a2};
    LLVMBasicBlockRef blocks[2] = {left, from_right};
    if (v == PHI_ORDER) {
        vals[0] = a2, vals[1] = a1;
        blocks[0] = from_right, blocks[1] = left;
    }
    LLVMAddIncoming(phi, vals, blocks, 2);
    LLVMValueRef q = LLVMBuildGEP2(b, c->f32, x, &phi, 1, "");
    LLVMBuildStore(b, LLVMConstReal(c->f32, 1), q);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    return fn;
}

static void test_same_code(void **state)
{
    (void)state;
    Ctx c = {.ctx = LLVMContextCreate()};
    c.mod = LLVMModuleCreateWithNameInContext("same", c.ctx);
    c.f32 = LLVMFloatTypeInContext(c.ctx);
    c.i64 = LLVMInt64TypeInContext(c.ctx);
    c.ptr = LLVMPointerTypeInContext(c.ctx, 0);
    c.v8 = LLVMVectorType(c.f32, 8);
    c.fnty = LLVMFunctionType(LLVMVoidTypeInContext(c.ctx), (LLVMTypeRef[]){c.ptr, c.i64, c.i64}, 3, 0);
    c.fma_ty = LLVMFunctionType(c.v8, (LLVMTypeRef[]){c.v8, c.v8, c.v8}, 3, 0);
    c.fma = LLVMAddFunction(c.mod, "llvm.fma.v8f32", c.fma_ty);
    LLVMValueRef fns[NVARIANTS], again[NVARIANTS];
    for (int v = 0; v < NVARIANTS; v++) {
        char name[32];
        snprintf(name, sizeof name, "k%d", v);
        fns[v] = build(&c, name, v);
        snprintf(name, sizeof name, "again%d", v);
        again[v] = build(&c, name, v);
    }
    char *msg = NULL;
    assert_false(LLVMVerifyModule(c.mod, LLVMReturnStatusAction, &msg));
    LLVMDisposeMessage(msg);
    for (int v = 0; v < NVARIANTS; v++) {
        assert_true(cg_same_code(fns[v], again[v]));
        assert_true(cg_same_code(fns[v], fns[v]));
        for (int w = 0; w < NVARIANTS; w++)
            if (w != v && !(cg_same_code(fns[v], fns[w]) == false))
                fail_msg("variants %d and %d compared the same", v, w);
    }
    LLVMDisposeModule(c.mod);
    LLVMContextDispose(c.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_code)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

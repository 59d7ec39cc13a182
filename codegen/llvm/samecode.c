/* samecode.c: whether two functions of one module are the same code, compared
 * instruction by instruction. Kernels are deduplicated with it (module.c): printing
 * both and comparing the text told the same, but LLVM's printer collects the types of
 * the whole module for each function it prints, so the cost grew with the square of
 * the kernel count (EfficientNet-B0: 0.65 s of a 0.77 s lowering).
 *
 * Two functions are the same when their types, calling conventions and attributes are,
 * and their instructions, in order, have the same opcode, type, operands, metadata and
 * the properties the C API shows (predicates, alignment, volatility, GEP types and
 * inbounds, shuffle masks, call types and attributes, PHI blocks, aggregate indices).
 * Values of the function (arguments, blocks, instructions) match by position; anything
 * else (constants, globals, metadata, attributes, types) is uniqued in the context and
 * matches by identity. LLVM 16's C API does not show the no-wrap and fast-math flags:
 * the only one the code generator sets is nsw, on index arithmetic that never
 * overflows, so two kernels that differed in it alone would still compute the same. */
#include <stdlib.h>
#include <string.h>

#include "cg.h"

/* Positions of a function's values: arguments, then blocks, then instructions. */
typedef struct Numbering {
    LLVMValueRef *key;
    int32_t *pos;
    uint32_t mask;
    int32_t n;
} Numbering;

static uint32_t slot_of(const Numbering *m, LLVMValueRef v)
{
    uintptr_t h = (uintptr_t)v;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15u;
    return (uint32_t)(h >> 32) & m->mask;
}

static void number(Numbering *m, LLVMValueRef v)
{
    uint32_t i = slot_of(m, v);
    while (m->key[i]) i = (i + 1) & m->mask;
    m->key[i] = v;
    m->pos[i] = m->n++;
}

/* Position of v in the function, -1 for a value that is not one of its own. */
static int32_t position(const Numbering *m, LLVMValueRef v)
{
    for (uint32_t i = slot_of(m, v); m->key[i]; i = (i + 1) & m->mask)
        if (m->key[i] == v) return m->pos[i];
    return -1;
}

static int32_t count_values(LLVMValueRef fn)
{
    int32_t n = (int32_t)LLVMCountParams(fn);
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb)) {
        n++;
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in))
            n++;
    }
    return n;
}

static void numbering_init(Numbering *m, LLVMValueRef fn, int32_t values)
{
    uint32_t size = 16;
    while (size < 2u * (uint32_t)values) size *= 2;
    *m = (Numbering){ir_xcalloc(size, sizeof *m->key), ir_xcalloc(size, sizeof *m->pos),
                     size - 1, 0};
    for (unsigned i = 0; i < LLVMCountParams(fn); i++) number(m, LLVMGetParam(fn, i));
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb))
        number(m, LLVMBasicBlockAsValue(bb));
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in))
            number(m, in);
}

static void numbering_free(Numbering *m)
{
    free(m->key);
    free(m->pos);
}

typedef struct Pair {
    Numbering a, b;
} Pair;

/* Operand values: the same position in each function, or the same value. */
static bool same_value(const Pair *p, LLVMValueRef x, LLVMValueRef y)
{
    int32_t i = position(&p->a, x), j = position(&p->b, y);
    return i >= 0 || j >= 0 ? i == j : x == y;
}

static bool same_attributes(LLVMAttributeRef *x, LLVMAttributeRef *y, unsigned n)
{
    return n == 0 || memcmp(x, y, n * sizeof *x) == 0;
}

/* The attributes at index `idx` of functions (call == false) or call sites. */
static bool same_attributes_at(LLVMValueRef a, LLVMValueRef b, LLVMAttributeIndex idx, bool call)
{
    unsigned n = call ? LLVMGetCallSiteAttributeCount(a, idx) : LLVMGetAttributeCountAtIndex(a, idx);
    unsigned m = call ? LLVMGetCallSiteAttributeCount(b, idx) : LLVMGetAttributeCountAtIndex(b, idx);
    if (n != m) return false;
    if (n == 0) return true;
    LLVMAttributeRef *x = ir_xmalloc(n * sizeof *x), *y = ir_xmalloc(n * sizeof *y);
    if (call) {
        LLVMGetCallSiteAttributes(a, idx, x);
        LLVMGetCallSiteAttributes(b, idx, y);
    } else {
        LLVMGetAttributesAtIndex(a, idx, x);
        LLVMGetAttributesAtIndex(b, idx, y);
    }
    bool same = same_attributes(x, y, n);
    free(x);
    free(y);
    return same;
}

/* Attributes of the function or call site, its return value and its `args` arguments. */
static bool same_attribute_lists(LLVMValueRef a, LLVMValueRef b, unsigned args, bool call)
{
    if (!same_attributes_at(a, b, LLVMAttributeFunctionIndex, call) ||
        !same_attributes_at(a, b, LLVMAttributeReturnIndex, call))
        return false;
    for (unsigned i = 1; i <= args; i++)
        if (!same_attributes_at(a, b, i, call)) return false;
    return true;
}

static bool same_metadata(LLVMValueRef a, LLVMValueRef b)
{
    size_t n, m;
    LLVMValueMetadataEntry *x = LLVMInstructionGetAllMetadataOtherThanDebugLoc(a, &n);
    LLVMValueMetadataEntry *y = LLVMInstructionGetAllMetadataOtherThanDebugLoc(b, &m);
    bool same = n == m;
    for (unsigned i = 0; same && i < (unsigned)n; i++)
        same = LLVMValueMetadataEntriesGetKind(x, i) == LLVMValueMetadataEntriesGetKind(y, i) &&
               LLVMValueMetadataEntriesGetMetadata(x, i) == LLVMValueMetadataEntriesGetMetadata(y, i);
    if (x) LLVMDisposeValueMetadataEntries(x);
    if (y) LLVMDisposeValueMetadataEntries(y);
    return same;
}

/* What instructions of each opcode hold besides their operands. */
static bool same_properties(const Pair *p, LLVMValueRef a, LLVMValueRef b, LLVMOpcode op)
{
    switch (op) {
    case LLVMICmp:
        return LLVMGetICmpPredicate(a) == LLVMGetICmpPredicate(b);
    case LLVMFCmp:
        return LLVMGetFCmpPredicate(a) == LLVMGetFCmpPredicate(b);
    case LLVMLoad:
    case LLVMStore:
        return LLVMGetVolatile(a) == LLVMGetVolatile(b) &&
               LLVMGetAlignment(a) == LLVMGetAlignment(b) &&
               LLVMGetOrdering(a) == LLVMGetOrdering(b);
    case LLVMAlloca:
        return LLVMGetAllocatedType(a) == LLVMGetAllocatedType(b) &&
               LLVMGetAlignment(a) == LLVMGetAlignment(b);
    case LLVMGetElementPtr:
        return LLVMGetGEPSourceElementType(a) == LLVMGetGEPSourceElementType(b) &&
               LLVMIsInBounds(a) == LLVMIsInBounds(b);
    case LLVMCall:
        return LLVMGetCalledFunctionType(a) == LLVMGetCalledFunctionType(b) &&
               LLVMGetInstructionCallConv(a) == LLVMGetInstructionCallConv(b) &&
               LLVMIsTailCall(a) == LLVMIsTailCall(b) &&
               LLVMGetNumArgOperands(a) == LLVMGetNumArgOperands(b) &&
               same_attribute_lists(a, b, LLVMGetNumArgOperands(a), true);
    case LLVMShuffleVector: {
        unsigned n = LLVMGetNumMaskElements(a);
        if (n != LLVMGetNumMaskElements(b)) return false;
        for (unsigned i = 0; i < n; i++)
            if (LLVMGetMaskValue(a, i) != LLVMGetMaskValue(b, i)) return false;
        return true;
    }
    case LLVMExtractValue:
    case LLVMInsertValue: {
        unsigned n = LLVMGetNumIndices(a);
        return n == LLVMGetNumIndices(b) &&
               (n == 0 || !memcmp(LLVMGetIndices(a), LLVMGetIndices(b), n * sizeof(unsigned)));
    }
    case LLVMPHI: {
        unsigned n = LLVMCountIncoming(a);
        if (n != LLVMCountIncoming(b)) return false;
        for (unsigned i = 0; i < n; i++)
            if (!same_value(p, LLVMBasicBlockAsValue(LLVMGetIncomingBlock(a, i)),
                            LLVMBasicBlockAsValue(LLVMGetIncomingBlock(b, i))))
                return false;
        return true;
    }
    case LLVMRet: case LLVMBr: case LLVMSwitch: case LLVMUnreachable:
    case LLVMFNeg: case LLVMAdd: case LLVMFAdd: case LLVMSub: case LLVMFSub: case LLVMMul:
    case LLVMFMul: case LLVMUDiv: case LLVMSDiv: case LLVMFDiv: case LLVMURem: case LLVMSRem:
    case LLVMFRem: case LLVMShl: case LLVMLShr: case LLVMAShr: case LLVMAnd: case LLVMOr:
    case LLVMXor: case LLVMTrunc: case LLVMZExt: case LLVMSExt: case LLVMFPToUI:
    case LLVMFPToSI: case LLVMUIToFP: case LLVMSIToFP: case LLVMFPTrunc: case LLVMFPExt:
    case LLVMPtrToInt: case LLVMIntToPtr: case LLVMBitCast: case LLVMSelect:
    case LLVMExtractElement: case LLVMInsertElement: case LLVMFreeze:
        return true; /* the opcode, type and operands say it all */
    default:
        return false; /* an instruction the kernels do not use: never merged */
    }
}

static bool same_instruction(const Pair *p, LLVMValueRef a, LLVMValueRef b)
{
    LLVMOpcode op = LLVMGetInstructionOpcode(a);
    int n = LLVMGetNumOperands(a);
    if (op != LLVMGetInstructionOpcode(b) || LLVMTypeOf(a) != LLVMTypeOf(b) ||
        n != LLVMGetNumOperands(b))
        return false;
    for (int i = 0; i < n; i++)
        if (!same_value(p, LLVMGetOperand(a, i), LLVMGetOperand(b, i))) return false;
    return same_properties(p, a, b, op) && same_metadata(a, b);
}

bool cg_same_code(LLVMValueRef a, LLVMValueRef b)
{
    unsigned args = LLVMCountParams(a);
    if (a == b) return true;
    if (LLVMGlobalGetValueType(a) != LLVMGlobalGetValueType(b) ||
        LLVMGetFunctionCallConv(a) != LLVMGetFunctionCallConv(b) ||
        LLVMGetAlignment(a) != LLVMGetAlignment(b) || LLVMGetGC(a) || LLVMGetGC(b) ||
        LLVMHasPersonalityFn(a) || LLVMHasPersonalityFn(b) ||
        LLVMCountBasicBlocks(a) != LLVMCountBasicBlocks(b) ||
        !same_attribute_lists(a, b, args, false))
        return false;
    int32_t values = count_values(a);
    if (values != count_values(b)) return false;
    Pair p;
    numbering_init(&p.a, a, values);
    numbering_init(&p.b, b, values);
    bool same = true;
    for (LLVMBasicBlockRef x = LLVMGetFirstBasicBlock(a), y = LLVMGetFirstBasicBlock(b);
         same && x; x = LLVMGetNextBasicBlock(x), y = LLVMGetNextBasicBlock(y)) {
        LLVMValueRef i = LLVMGetFirstInstruction(x), j = LLVMGetFirstInstruction(y);
        for (; same && i && j; i = LLVMGetNextInstruction(i), j = LLVMGetNextInstruction(j))
            same = same_instruction(&p, i, j);
        same = same && !i && !j;
    }
    numbering_free(&p.a);
    numbering_free(&p.b);
    return same;
}

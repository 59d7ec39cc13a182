/* pipeline.c: the passes in the order they run, and the loop that runs them
 * with the verifier after each (a pass that leaves a broken graph is a
 * compiler bug) and the --dump-after hook. */
#include "passes.h"

#include <string.h>

const PassInfo pass_pipeline[] = {
    {"channels_first", pass_channels_first, false,
     "layers between a permute to channels-last and back, over the channels instead"},
    {"lower", pass_lower, true, "dense over a dim other than the last as conv2d or transposes"},
    {"simplify", pass_simplify, false, "drop identities (dropout, repeated relu)"},
    {"fold_bn", pass_fold_bn, false, "fold batchnorm and per-channel scales into the conv2d/dense before them"},
    {"fold_const", pass_fold_const, false, "compute ops on constants at compile time"},
    {"fuse", pass_fuse, false, "fuse activations and residual adds into conv2d/dense"},
    {"dce", pass_dce, false, "remove nodes no output needs"},
    {"layout", pass_layout, true, "choose blocked NCHW[b]c layouts, insert reorders"},
    {"conv_algo", pass_conv_algo, false, "compute 3×3 stride-1 conv2d as Winograd F(4×4, 3×3) where it pays; strided 1×1 conv2d after a gather"},
    {"fuse_dw", pass_fuse_dw, false, "compute a 1×1 conv2d inside the depthwise conv2d that alone reads it, never storing its output"},
    {"fuse_scale", pass_fuse_scale, false, "apply a per-channel scale of a conv2d's input (squeeze-and-excitation's) to its weights inside the kernel, never storing the scaled input"},
    {"fuse_pool", pass_fuse_pool, false, "compute a conv2d inside the maxpool that alone reads it, never storing its output"},
    {"plan_memory", pass_plan_memory, true, "assign arena offsets to every value"},
};

const int32_t pass_count = (int32_t)(sizeof pass_pipeline / sizeof pass_pipeline[0]);

int32_t pass_index(const char *name)
{
    for (int32_t i = 0; i < pass_count; i++)
        if (strcmp(pass_pipeline[i].name, name) == 0)
            return i;
    return -1;
}

void pass_options_init(PassOptions *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->dump_after = -1;
    opt->dump = stdout;
#ifndef NDEBUG
    opt->verify = true;
#endif
}

static void verify_after(const Graph *g, const char *pass)
{
    Diag d;
    ir_diag_init(&d, stderr);
    bool ok = ir_verify(g, &d);
    ir_diag_fini(&d);
    if (!ok)
        ICE("the graph is invalid after pass '%s'", pass);
}

bool pass_run_pipeline(Graph *g, const PassOptions *opt, Diag *d)
{
    for (int32_t i = 0; i < pass_count; i++) {
        const PassInfo *p = &pass_pipeline[i];
        if (i < 64 && (opt->disabled >> i) & 1) {
            if (!p->required)
                continue;
            ir_error(d, (SrcLoc){0}, "pass '%s' is required and cannot be disabled", p->name);
            return false;
        }
        if (!p->run(g, opt, d))
            return false;
        if (opt->verify)
            verify_after(g, p->name);
        if (opt->dump_after == i)
            ir_print(g, opt->dump ? opt->dump : stdout);
    }
    return true;
}

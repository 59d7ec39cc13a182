/* nvrtc.c: compiles a program's CUDA C with NVRTC into PTX for compute_XX (the
 * forward-compatible form) and, on request, cubin for sm_XX. Without NVRTC at
 * build time every call reports that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

#ifdef CNNC_HAVE_NVRTC
#include <nvrtc.h>

bool cg_cuda_have_nvrtc(void)
{
    return true;
}

static char *copy_log(nvrtcProgram prog)
{
    size_t n = 0;
    if (nvrtcGetProgramLogSize(prog, &n) != NVRTC_SUCCESS || n == 0) n = 1;
    char *log = ir_xcalloc(n + 1, 1);
    if (n > 1) nvrtcGetProgramLog(prog, log);
    return log;
}

/* One NVRTC compilation for `arch` ("compute_80" or "sm_80"). */
static bool compile_one(const CuProgram *p, const char *arch, char **log, nvrtcProgram *prog,
                        char *err, size_t n)
{
    nvrtcResult r = nvrtcCreateProgram(prog, p->source, "model.cu", 0, NULL, NULL);
    if (r != NVRTC_SUCCESS) {
        snprintf(err, n, "NVRTC: %s", nvrtcGetErrorString(r));
        return false;
    }
    char opt_arch[64];
    snprintf(opt_arch, sizeof opt_arch, "--gpu-architecture=%s", arch);
    const char *opts[] = {opt_arch, "--std=c++17", "-default-device", "--fmad=true"};
    r = nvrtcCompileProgram(*prog, (int)(sizeof opts / sizeof opts[0]), opts);
    *log = copy_log(*prog);
    if (r != NVRTC_SUCCESS) {
        snprintf(err, n, "NVRTC failed for %s: %s\n%s", arch, nvrtcGetErrorString(r), *log);
        nvrtcDestroyProgram(prog);
        return false;
    }
    return true;
}

static bool get_ptx(nvrtcProgram prog, CuBinary *out)
{
    if (nvrtcGetPTXSize(prog, &out->ptx_size) != NVRTC_SUCCESS) return false;
    out->ptx = ir_xcalloc(out->ptx_size + 1, 1);
    return nvrtcGetPTX(prog, out->ptx) == NVRTC_SUCCESS;
}

static bool get_cubin(nvrtcProgram prog, CuBinary *out)
{
    if (nvrtcGetCUBINSize(prog, &out->cubin_size) != NVRTC_SUCCESS) return false;
    out->cubin = ir_xmalloc(out->cubin_size ? out->cubin_size : 1);
    return nvrtcGetCUBIN(prog, out->cubin) == NVRTC_SUCCESS;
}

/* For sm_XX NVRTC gives the cubin and the PTX it was made from (the same PTX
 * compute_XX gives), so one compilation serves both. */
bool cg_cuda_compile(const CuProgram *p, bool cubin, CuBinary *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    char arch[32];
    nvrtcProgram prog;
    snprintf(arch, sizeof arch, "%s_%d", cubin ? "sm" : "compute", p->target.arch);
    if (!compile_one(p, arch, &out->log, &prog, err, n)) return cg_cuda_binary_free(out), false;
    bool ok = get_ptx(prog, out) && (!cubin || get_cubin(prog, out));
    nvrtcDestroyProgram(&prog);
    if (!ok) {
        snprintf(err, n, "NVRTC returned no %s", out->ptx ? "cubin" : "PTX");
        cg_cuda_binary_free(out);
    }
    return ok;
}

#else

bool cg_cuda_have_nvrtc(void)
{
    return false;
}

bool cg_cuda_compile(const CuProgram *p, bool cubin, CuBinary *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    snprintf(err, n, "this cnnc was built without NVRTC (the CUDA toolkit was not found when "
             "it was configured), so it cannot compile CUDA code");
    return false;
}

#endif

void cg_cuda_binary_free(CuBinary *b)
{
    free(b->ptx);
    free(b->cubin);
    free(b->log);
    memset(b, 0, sizeof *b);
}

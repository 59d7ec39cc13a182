/* image.c: JPEG (libjpeg-turbo) and PNG (libpng) decoding, and torchvision's ImageNet
 * preprocessing computed as PIL computes it, so that a model sees the same tensor
 * here as under transforms.Resize(256), CenterCrop, ToTensor and Normalize. */
#include "image.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "ir.h"

/* A file larger than this is no image this tool means to read. */
#define MAX_FILE_BYTES ((long)1 << 30)

static bool fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return false;
}

static bool read_file(const char *path, uint8_t **data, size_t *size, char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, n, "cannot open '%s': %s", path, strerror(errno));
    struct stat st = {0};
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            fail(err, n, "'%s' is a directory", path);
        else
            fail(err, n, "cannot read '%s': not a regular file", path);
        return fclose(f), false;
    }
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fail(err, n, "cannot read '%s': %s", path, strerror(errno));
        return fclose(f), false;
    }
    if (len > MAX_FILE_BYTES) {
        fail(err, n, "'%s' is too large for an image (%ld bytes, at most %ld)", path, len,
             MAX_FILE_BYTES);
        return fclose(f), false;
    }
    *data = malloc((size_t)len + 1);
    if (!*data) {
        fail(err, n, "out of memory reading '%s'", path);
        return fclose(f), false;
    }
    *size = fread(*data, 1, (size_t)len, f);
    bool ok = *size == (size_t)len && !ferror(f);
    fclose(f);
    if (!ok) {
        free(*data);
        return fail(err, n, "cannot read '%s'", path);
    }
    return true;
}

static bool alloc_pixels(Image *img, int64_t w, int64_t h, int32_t c, const char *path,
                         char *err, size_t n)
{
    if (w < 1 || h < 1 || w * h > IMAGE_MAX_PIXELS)
        return fail(err, n, "'%s' is %" PRId64 "x%" PRId64 " pixels: too large (at most %" PRId64
                    " pixels)", path, w, h, IMAGE_MAX_PIXELS);
    img->pixels = malloc((size_t)(w * h * c));
    if (!img->pixels)
        return fail(err, n, "out of memory decoding '%s'", path);
    img->width = (int32_t)w;
    img->height = (int32_t)h;
    img->channels = c;
    return true;
}

/* PIL's RGB to 'L': ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static uint8_t luma(const uint8_t *rgb)
{
    return (uint8_t)((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

/* One decoded row of `from` channels (gray, gray+alpha, RGB, RGBA) into `to` (1 or 3). */
static void convert_row(uint8_t *out, int32_t to, const uint8_t *in, int32_t from, int32_t w)
{
    for (int32_t x = 0; x < w; x++, in += from, out += to) {
        if (to == 1)
            out[0] = from >= 3 ? luma(in) : in[0];
        else if (from >= 3)
            memcpy(out, in, 3);
        else
            out[0] = out[1] = out[2] = in[0];
    }
}

/* ---- JPEG ---- */

typedef struct JpegErr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    bool truncated;
} JpegErr;

static void jpeg_fail(j_common_ptr cinfo)
{
    longjmp(((JpegErr *)cinfo->err)->jump, 1);
}

/* Warnings are not printed; the one for a file that ends before its image does
 * fails the read, as PIL refuses a truncated JPEG. */
static void jpeg_warn(j_common_ptr cinfo, int level)
{
    JpegErr *e = (JpegErr *)cinfo->err;
    if (level < 0 && e->mgr.msg_code == JWRN_JPEG_EOF)
        e->truncated = true;
}

typedef struct Decode {
    const char *path;
    const uint8_t *data;
    size_t size, pos;
    int32_t channels;
    Image *img;
    uint8_t *row; /* one decoded row before conversion */
    png_bytep *rows;
    char *err;
    size_t errlen;
} Decode;

static bool jpeg_pixels(Decode *d, struct jpeg_decompress_struct *cinfo)
{
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK)
        return fail(d->err, d->errlen, "'%s': CMYK JPEG images are not supported", d->path);
    int32_t from = cinfo->num_components == 1 ? 1 : 3;
    cinfo->out_color_space = from == 1 ? JCS_GRAYSCALE : JCS_RGB;
    if (!alloc_pixels(d->img, cinfo->image_width, cinfo->image_height, d->channels, d->path,
                      d->err, d->errlen))
        return false;
    jpeg_start_decompress(cinfo);
    d->row = malloc((size_t)cinfo->output_width * (size_t)from);
    if (!d->row)
        return fail(d->err, d->errlen, "out of memory decoding '%s'", d->path);
    int32_t w = d->img->width;
    while (cinfo->output_scanline < cinfo->output_height) {
        uint8_t *out = d->img->pixels + (size_t)cinfo->output_scanline * (size_t)w * d->channels;
        JSAMPROW r = d->row;
        jpeg_read_scanlines(cinfo, &r, 1);
        convert_row(out, d->channels, d->row, from, w);
    }
    jpeg_finish_decompress(cinfo);
    if (((JpegErr *)cinfo->err)->truncated)
        return fail(d->err, d->errlen, "'%s': truncated JPEG file", d->path);
    return true;
}

static bool decode_jpeg(Decode *d)
{
    struct jpeg_decompress_struct cinfo;
    JpegErr e;
    memset(&e, 0, sizeof e);
    cinfo.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jpeg_fail;
    e.mgr.emit_message = jpeg_warn;
    if (setjmp(e.jump)) {
        char msg[JMSG_LENGTH_MAX];
        e.mgr.format_message((j_common_ptr)&cinfo, msg);
        jpeg_destroy_decompress(&cinfo);
        return fail(d->err, d->errlen, "'%s': bad JPEG file: %s", d->path, msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, d->data, (unsigned long)d->size);
    bool ok = jpeg_pixels(d, &cinfo);
    jpeg_destroy_decompress(&cinfo);
    return ok;
}

/* ---- PNG ---- */

static void png_fail(png_structp png, png_const_charp msg)
{
    Decode *d = png_get_error_ptr(png);
    fail(d->err, d->errlen, "'%s': bad PNG file: %s", d->path, msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    Decode *d = png_get_io_ptr(png);
    if (n > d->size - d->pos)
        png_error(png, "truncated file");
    memcpy(out, d->data + d->pos, n);
    d->pos += n;
}

/* The image as libpng expands it to 8 bits (palettes to RGB, with any alpha),
 * then converted one row at a time. */
static bool png_pixels(Decode *d, png_structp png, png_infop info)
{
    png_set_read_fn(png, d, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    png_set_strip_16(png);
    png_set_palette_to_rgb(png);
    png_set_expand_gray_1_2_4_to_8(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int32_t from = png_get_channels(png, info);
    if (!alloc_pixels(d->img, w, h, d->channels, d->path, d->err, d->errlen))
        return false;
    if (passes > 1) {
        /* Interlaced: all rows stay decoded until the last pass. */
        d->rows = calloc(h, sizeof *d->rows);
        d->row = malloc((size_t)w * h * (size_t)from);
        if (!d->rows || !d->row)
            return fail(d->err, d->errlen, "out of memory decoding '%s'", d->path);
        for (png_uint_32 y = 0; y < h; y++)
            d->rows[y] = d->row + (size_t)y * w * (size_t)from;
        png_read_image(png, d->rows);
        for (png_uint_32 y = 0; y < h; y++)
            convert_row(d->img->pixels + (size_t)y * w * d->channels, d->channels, d->rows[y],
                        from, (int32_t)w);
        return true;
    }
    d->row = malloc((size_t)w * (size_t)from);
    if (!d->row)
        return fail(d->err, d->errlen, "out of memory decoding '%s'", d->path);
    for (png_uint_32 y = 0; y < h; y++) {
        png_read_row(png, d->row, NULL);
        convert_row(d->img->pixels + (size_t)y * w * d->channels, d->channels, d->row, from,
                    (int32_t)w);
    }
    return true;
}

static bool decode_png(Decode *d)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_fail, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fail(d->err, d->errlen, "out of memory decoding '%s'", d->path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return false;
    }
    bool ok = png_pixels(d, png, info);
    png_destroy_read_struct(&png, &info, NULL);
    return ok;
}

bool image_read(const char *path, int32_t channels, Image *img, char *err, size_t errlen)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(img, 0, sizeof *img);
    Decode d = {.path = path, .channels = channels, .img = img, .err = err, .errlen = errlen};
    uint8_t *data = NULL;
    if (!read_file(path, &data, &d.size, err, errlen))
        return false;
    d.data = data;
    bool ok;
    if (d.size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        ok = decode_jpeg(&d);
    else if (d.size >= 8 && !memcmp(data, png_sig, 8))
        ok = decode_png(&d);
    else if (d.size == 0)
        ok = fail(err, errlen, "'%s' is empty", path);
    else
        ok = fail(err, errlen, "'%s' is not a JPEG or PNG image", path);
    free(d.row);
    free(d.rows);
    free(data);
    if (!ok)
        image_free(img);
    return ok;
}

void image_free(Image *img)
{
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---- Resizing, as Pillow's Resample.c ---- */

/* Fixed-point weights: 8 bits of pixel, 22 of fraction and 2 of headroom for the
 * sums, in an int32. */
#define PRECISION_BITS (32 - 8 - 2)

/* For each output position: the first input index, how many follow, and their
 * weights (ksize a row). The filter is the triangle of support 1, widened by the
 * scale when shrinking so that every input pixel counts (antialiasing). */
static int32_t coeffs(int32_t in_size, int32_t out_size, int32_t **bounds, int32_t **weights)
{
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int32_t ksize = (int32_t)ceil(support) * 2 + 1;
    *bounds = ir_xmalloc((size_t)out_size * 2 * sizeof **bounds);
    *weights = ir_xmalloc((size_t)out_size * (size_t)ksize * sizeof **weights);
    double *k = ir_xmalloc((size_t)ksize * sizeof *k);
    for (int32_t xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int32_t xmin = (int32_t)(center - support + 0.5);
        int32_t xmax = (int32_t)(center + support + 0.5);
        xmin = xmin < 0 ? 0 : xmin;
        xmax = (xmax > in_size ? in_size : xmax) - xmin;
        for (int32_t x = 0; x < xmax; x++) {
            double t = fabs((x + xmin - center + 0.5) * ss);
            k[x] = t < 1.0 ? 1.0 - t : 0.0;
            ww += k[x];
        }
        int32_t *kk = *weights + (size_t)xx * ksize;
        for (int32_t x = 0; x < ksize; x++) {
            double v = x < xmax && ww != 0.0 ? k[x] / ww : 0.0;
            kk[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                    : 0.5 + v * (1 << PRECISION_BITS));
        }
        (*bounds)[xx * 2] = xmin;
        (*bounds)[xx * 2 + 1] = xmax;
    }
    free(k);
    return ksize;
}

static uint8_t clip8(int32_t ss)
{
    return ss < 0 ? 0 : (ss >> PRECISION_BITS) > 255 ? 255 : (uint8_t)(ss >> PRECISION_BITS);
}

/* One pass along x (step = channels) or y (step = row length): out[i] from the
 * in[bounds..] weighted, rounded and clipped to 8 bits. */
static void resample(const Image *in, Image *out, bool horizontal)
{
    int32_t *bounds, *w, c = in->channels;
    int32_t ksize = horizontal ? coeffs(in->width, out->width, &bounds, &w)
                               : coeffs(in->height, out->height, &bounds, &w);
    size_t in_row = (size_t)in->width * c, out_row = (size_t)out->width * c;
    size_t step = horizontal ? (size_t)c : in_row;
    for (int32_t y = 0; y < out->height; y++)
        for (int32_t x = 0; x < out->width; x++) {
            int32_t i = horizontal ? x : y, lo = bounds[i * 2], n = bounds[i * 2 + 1];
            const int32_t *k = w + (size_t)i * ksize;
            const uint8_t *src = horizontal ? in->pixels + y * in_row + (size_t)lo * c
                                            : in->pixels + (size_t)lo * in_row + (size_t)x * c;
            uint8_t *dst = out->pixels + y * out_row + (size_t)x * c;
            for (int32_t ch = 0; ch < c; ch++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int32_t j = 0; j < n; j++)
                    ss += src[j * step + ch] * k[j];
                dst[ch] = clip8(ss);
            }
        }
    free(bounds);
    free(w);
}

static Image new_image(int32_t width, int32_t height, int32_t channels)
{
    return (Image){width, height, channels,
                   ir_xmalloc((size_t)width * (size_t)height * (size_t)channels)};
}

/* Horizontal pass first, then vertical, each only when that size changes (as Pillow). */
Image image_resize(const Image *in, int32_t width, int32_t height)
{
    Image tmp = *in;
    if (width != in->width) {
        tmp = new_image(width, in->height, in->channels);
        resample(in, &tmp, true);
    }
    if (height == in->height) {
        if (tmp.pixels == in->pixels) {
            tmp = new_image(width, height, in->channels);
            memcpy(tmp.pixels, in->pixels, (size_t)width * height * in->channels);
        }
        return tmp;
    }
    Image out = new_image(width, height, in->channels);
    resample(&tmp, &out, false);
    if (tmp.pixels != in->pixels)
        free(tmp.pixels);
    return out;
}

/* ---- The whole pipeline ---- */

void image_prep_imagenet(ImagePrep *p)
{
    *p = (ImagePrep){256, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
}

/* Where the crop starts in the image (negative: zero padding before it), as
 * torchvision's center_crop: int(round(d / 2.0)) with Python's ties to even, or
 * when the image is the smaller, the padding's floor half before it. */
static int64_t crop_start(int64_t size, int64_t crop)
{
    if (crop > size)
        return -((crop - size) / 2);
    int64_t d = size - crop, half = d / 2;
    return d % 2 == 0 || half % 2 == 0 ? half : half + 1;
}

static bool resize_short_side(Image *img, int32_t side)
{
    int64_t w = img->width, h = img->height, s = w <= h ? w : h, l = w <= h ? h : w;
    /* torchvision: int(side * long / short), a double quotient truncated. */
    int64_t nl = (int64_t)((double)(side * l) / (double)s);
    int64_t nw = w <= h ? side : nl, nh = w <= h ? nl : side;
    if (nw > IMAGE_MAX_PIXELS / nh)
        return false;
    if (nw == w && nh == h)
        return true;
    Image r = image_resize(img, (int32_t)nw, (int32_t)nh);
    image_free(img);
    *img = r;
    return true;
}

bool image_load_tensor(const char *path, const ImagePrep *p, int32_t channels, int64_t height,
                       int64_t width, float *out, char *err, size_t errlen)
{
    Image img;
    if (!image_read(path, channels, &img, err, errlen))
        return false;
    if (p->resize > 0 && !resize_short_side(&img, p->resize)) {
        image_free(&img);
        return fail(err, errlen, "'%s' resized to a short side of %d would be too large", path,
                    p->resize);
    }
    int64_t top = crop_start(img.height, height), left = crop_start(img.width, width);
    for (int32_t c = 0; c < channels; c++)
        for (int64_t y = 0; y < height; y++)
            for (int64_t x = 0; x < width; x++) {
                int64_t sy = y + top, sx = x + left;
                bool in = sy >= 0 && sy < img.height && sx >= 0 && sx < img.width;
                uint8_t v = in ? img.pixels[(sy * img.width + sx) * channels + c] : 0;
                /* As torch: a float32 division by 255, then (x - mean) / std in float32. */
                float f = (float)v / 255.0f;
                out[(c * height + y) * width + x] = (f - p->mean[c]) / p->std[c];
            }
    image_free(&img);
    return true;
}

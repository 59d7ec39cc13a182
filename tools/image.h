/* image.h: JPEG and PNG files into a model's input, preprocessed as torchvision's
 * ImageNet pipeline does it: Resize(N) with PIL's antialiased bilinear filter,
 * CenterCrop(H, W), ToTensor() and Normalize(mean, std). Used by cnnrun --image. */
#ifndef CNNC_IMAGE_H
#define CNNC_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 8-bit pixels, rows top to bottom, channels interleaved: 1 is luminance
 * (PIL's 'L'), 3 is RGB. */
typedef struct Image {
    int32_t width, height, channels;
    uint8_t *pixels;
} Image;

/* The largest image read, in pixels (a 16384×16384 image). */
#define IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Decodes a JPEG or PNG file (told apart by their signatures) into `channels` 1 or 3:
 * RGB to luminance as PIL's convert('L'), luminance to RGB by copying, alpha
 * dropped, 16-bit samples to their high byte. On failure, a message naming the
 * file in err and false. */
bool image_read(const char *path, int32_t channels, Image *img, char *err, size_t errlen);
void image_free(Image *img);

/* `in` resized to width × height as PIL's Image.resize(..., BILINEAR): a triangle
 * filter stretched by the scale when shrinking, fixed-point weights, a horizontal
 * pass rounded to 8 bits, then a vertical one. Sizes 1 or more. */
Image image_resize(const Image *in, int32_t width, int32_t height);

typedef struct ImagePrep {
    int32_t resize;         /* the short side after resizing; 0: no resize */
    float mean[3], std[3];  /* per channel, of the values in [0, 1] */
} ImagePrep;

/* ImageNet's: resize to 256, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225). */
void image_prep_imagenet(ImagePrep *p);

/* The file at `path` as a C × H × W float tensor in out: decoded to C channels,
 * short side resized to p->resize (the long side in proportion, truncated, as
 * torchvision), cropped to H × W about the centre (padded with zeros where the
 * image is smaller), scaled to [0, 1] and normalized. */
bool image_load_tensor(const char *path, const ImagePrep *p, int32_t channels, int64_t height,
                       int64_t width, float *out, char *err, size_t errlen);

/* ImageNet's class names in class order (tools/imagenet_classes.txt, compiled in). */
extern const char *const imagenet_classes[];
extern const int imagenet_class_count;

#endif

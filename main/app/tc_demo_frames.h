/*
 * tc_demo_frames.h - a few small JPEG frames compiled into the binary, so the demo MJPEG stream needs no camera.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_DEMO_FRAME_COUNT 4

/** One JPEG image. */
typedef struct {
    const uint8_t *data;
    size_t len;
} tc_demo_frame_t;

/** The frames, in order (96x72 pixels, baseline JPEG). */
extern const tc_demo_frame_t tc_demo_frames[TC_DEMO_FRAME_COUNT];

#ifdef __cplusplus
}
#endif

/*
 * tc_ws_codec.h - the pure WebSocket (RFC 6455) pieces: the handshake's accept key, frame headers in and out,
 * unmasking, the fragmentation rules, incremental UTF-8 validation and close-frame parsing. No allocation.
 *
 * Decoding is for a server: client frames must be masked. Every protocol error maps to the close code the server
 * sends (tc_ws_error_close_code()): 1002 protocol error, 1007 invalid UTF-8, 1009 message too big. Lengths are
 * 64-bit and compared with the limit before any narrowing; a length with its most significant bit set (RFC 6455
 * 5.2) or in a longer form than needed is a protocol error.
 *
 * Example:
 *     tc_ws_frame_t f;
 *     int n = tc_ws_decode_header(buf, len, 16384, &f);   // > 0: header of n bytes, payload follows
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Opcodes (RFC 6455 5.2). */
enum {
    TC_WS_OP_CONT = 0x0,
    TC_WS_OP_TEXT = 0x1,
    TC_WS_OP_BINARY = 0x2,
    TC_WS_OP_CLOSE = 0x8,
    TC_WS_OP_PING = 0x9,
    TC_WS_OP_PONG = 0xA,
};

/** Length of Sec-WebSocket-Accept: base64 of a SHA-1 digest. */
#define TC_WS_ACCEPT_LEN 28

/** Longest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define TC_WS_MAX_HEADER 14

/** Decoder results. */
enum {
    TC_WS_INCOMPLETE = -1, /**< the header is not complete yet */
    TC_WS_EPROTO = -2,     /**< protocol error (1002) */
    TC_WS_ETOO_BIG = -3,   /**< payload beyond the limit (1009) */
};

/** A decoded frame header. */
typedef struct {
    uint8_t fin;
    uint8_t rsv;    /**< the three RSV bits */
    uint8_t opcode;
    uint8_t masked;
    uint8_t mask[4];
    uint64_t payload_len;
} tc_ws_frame_t;

/**
 * @brief Compute Sec-WebSocket-Accept for a Sec-WebSocket-Key, checking the key (RFC 6455 4.2.1: base64 of 16 bytes).
 * @param key  the header value (surrounding whitespace already trimmed)
 * @param out  receives TC_WS_ACCEPT_LEN characters and a NUL
 * @return 0, or -1 for a malformed key (the server answers 400)
 */
int tc_ws_accept_key(const char *key, size_t key_len, char out[TC_WS_ACCEPT_LEN + 1]);

/**
 * @brief Write a frame header (a server's frames are unmasked: pass mask NULL).
 * @param out  at least TC_WS_MAX_HEADER bytes
 * @return the header length
 */
size_t tc_ws_encode_header(uint8_t *out, int fin, int opcode, uint64_t payload_len, const uint8_t mask[4]);

/**
 * @brief Decode a client frame header from the start of buf.
 * @param max_payload  largest payload accepted for a data frame
 * @return the header length (> 0), TC_WS_INCOMPLETE, TC_WS_EPROTO or TC_WS_ETOO_BIG
 */
int tc_ws_decode_header(const uint8_t *buf, size_t len, uint64_t max_payload, tc_ws_frame_t *f);

/** @brief The close code for a decoder error: 1002 or 1009 (1002 for anything unknown). */
uint16_t tc_ws_error_close_code(int err);

/**
 * @brief XOR data with the mask in place; offset is the position of data[0] in the payload (unmask in pieces).
 */
void tc_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/**
 * @brief Apply the fragmentation rules (RFC 6455 5.4) to a frame, tracking the open message's opcode.
 * @param msg_opcode  state: 0 when no fragmented message is open, else its opcode; updated
 * @return 0 when allowed, or 1002: a continuation with no message open (mongoose's lone final continuation), or a
 *         new data frame while a message is open. Control frames are allowed between fragments.
 */
int tc_ws_frame_check(uint8_t *msg_opcode, const tc_ws_frame_t *f);

/** Incremental UTF-8 validator state; a code point may be split across frames. Zero-initialise or reset. */
typedef struct {
    uint8_t need;  /* continuation bytes still expected */
    uint8_t lo;    /* allowed range of the next byte (excludes overlongs, surrogates, > U+10FFFF) */
    uint8_t hi;
} tc_ws_utf8_t;

/** @brief Feed bytes. @return 0 while valid, -1 at the first invalid byte (1007). */
int tc_ws_utf8_feed(tc_ws_utf8_t *u, const uint8_t *data, size_t len);

/** @brief 1 when no code point is left unfinished (the message may end here), else 0. */
int tc_ws_utf8_complete(const tc_ws_utf8_t *u);

/** @brief Start a new message. */
void tc_ws_utf8_reset(tc_ws_utf8_t *u);

/**
 * @brief Check a received close frame's payload (already unmasked).
 * @param code  receives the code, 1005 ("no status") for an empty payload
 * @return 0 when valid, 1002 (one byte, or a code that may not be sent: < 1000, 1004-1006, 1015-2999 except
 *         1012-1014, >= 5000) or 1007 (reason not UTF-8)
 */
int tc_ws_parse_close(const uint8_t *payload, size_t len, uint16_t *code);

#ifdef __cplusplus
}
#endif

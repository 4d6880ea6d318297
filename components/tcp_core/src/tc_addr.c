/*
 * tc_addr.c - numeric address parsing and printing, pure C (no socket header, so the same code serves every
 * backend, lwIP's included).
 */
#include "tc_addr.h"

#include <stdio.h>
#include <string.h>

#include "tc_err.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Parse dotted-quad IPv4 of exactly len chars into out[4]; rejects leading zeros that would mean octal elsewhere. */
static int parse_v4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (i >= len || s[i] < '0' || s[i] > '9') {
            return -1;
        }
        unsigned v = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (unsigned)(s[i] - '0');
            if (v > 255 || i - start >= 3) {
                return -1;
            }
            i++;
        }
        if (i - start > 1 && s[start] == '0') {
            return -1;
        }
        out[part] = (uint8_t)v;
        if (part < 3) {
            if (i >= len || s[i] != '.') {
                return -1;
            }
            i++;
        }
    }
    return i == len ? 0 : -1;
}

/* Parse IPv6 text (RFC 4291 section 2.2 forms, with an optional trailing dotted quad) into out[16]. */
static int parse_v6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t words[8] = {0};
    int n = 0;
    int gap = -1;
    size_t i = 0;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
        if (i == len) {
            memset(out, 0, 16);
            return 0;
        }
    } else if (len >= 1 && s[0] == ':') {
        return -1;
    }
    while (i < len) {
        if (n >= 8) {
            return -1;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && hexval(s[i]) >= 0 && i - start < 4) {
            v = (v << 4) | (unsigned)hexval(s[i]);
            i++;
        }
        if (i < len && s[i] == '.') {
            /* embedded IPv4 in the last 32 bits */
            if (n > 6) {
                return -1;
            }
            uint8_t v4[4];
            if (parse_v4(s + start, len - start, v4) != 0) {
                return -1;
            }
            words[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
            words[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
            i = len;
            break;
        }
        if (i == start) {
            return -1;
        }
        words[n++] = (uint16_t)v;
        if (i == len) {
            break;
        }
        if (s[i] != ':') {
            return -1;
        }
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0) {
                return -1;
            }
            gap = n;
            i++;
        } else if (i == len) {
            return -1;
        }
    }
    if (gap < 0 && n != 8) {
        return -1;
    }
    if (gap >= 0 && n > 7) {
        return -1;
    }
    uint16_t full[8] = {0};
    if (gap >= 0) {
        int tail = n - gap;
        memcpy(full, words, (size_t)gap * sizeof(uint16_t));
        memcpy(full + 8 - tail, words + gap, (size_t)tail * sizeof(uint16_t));
    } else {
        memcpy(full, words, sizeof(full));
    }
    for (int k = 0; k < 8; k++) {
        out[2 * k] = (uint8_t)(full[k] >> 8);
        out[2 * k + 1] = (uint8_t)full[k];
    }
    return 0;
}

int tc_addr_from_ip(const char *ip, uint16_t port, tc_addr_t *out)
{
    if (ip == NULL || out == NULL) {
        return TC_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->port = port;
    size_t len = strlen(ip);
    if (parse_v4(ip, len, out->ip) == 0) {
        out->family = TC_AF_INET;
        return TC_OK;
    }
    const char *pct = memchr(ip, '%', len);
    size_t addr_len = pct ? (size_t)(pct - ip) : len;
    if (parse_v6(ip, addr_len, out->ip) != 0) {
        memset(out, 0, sizeof(*out));
        return TC_EBADADDR;
    }
    if (pct) {
        unsigned long scope = 0;
        const char *p = pct + 1;
        if (*p == '\0') {
            return TC_EBADADDR;
        }
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || scope > 0xFFFFFFFFul / 10) {
                return TC_EBADADDR;
            }
            scope = scope * 10 + (unsigned long)(*p - '0');
        }
        if (scope > 0xFFFFFFFFul) {
            return TC_EBADADDR;
        }
        out->scope_id = (uint32_t)scope;
    }
    out->family = TC_AF_INET6;
    out->port = port;
    return TC_OK;
}

int tc_addr_split(const char *text, uint16_t default_port, char *host, size_t host_cap, uint16_t *port)
{
    if (text == NULL || host == NULL || port == NULL || host_cap == 0) {
        return TC_EINVAL;
    }
    const char *h = text;
    size_t hlen;
    const char *p = NULL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL) {
            return TC_EBADADDR;
        }
        h = text + 1;
        hlen = (size_t)(close - h);
        if (close[1] == ':') {
            p = close + 2;
        } else if (close[1] != '\0') {
            return TC_EBADADDR;
        }
    } else {
        const char *colon = strrchr(text, ':');
        if (colon && strchr(text, ':') != colon) {
            colon = NULL; /* bare IPv6 literal: no port part */
        }
        hlen = colon ? (size_t)(colon - text) : strlen(text);
        p = colon ? colon + 1 : NULL;
    }
    if (hlen == 0) {
        return TC_EBADADDR;
    }
    if (hlen >= host_cap) {
        return TC_ELIMIT;
    }
    unsigned long v = default_port;
    if (p) {
        if (*p == '\0') {
            return TC_EBADPORT;
        }
        v = 0;
        for (const char *q = p; *q; q++) {
            if (*q < '0' || *q > '9') {
                return TC_EBADPORT;
            }
            v = v * 10 + (unsigned long)(*q - '0');
            if (v > 65535) {
                return TC_EBADPORT;
            }
        }
    }
    if (v == 0) {
        return TC_EBADPORT;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return TC_OK;
}

int tc_addr_format(const tc_addr_t *addr, int with_port, char *buf, size_t cap)
{
    char tmp[TC_ADDR_STRLEN];
    int n;
    if (addr == NULL || buf == NULL) {
        return TC_EINVAL;
    }
    if (addr->family == TC_AF_INET) {
        n = snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", addr->ip[0], addr->ip[1], addr->ip[2], addr->ip[3]);
        if (with_port) {
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ":%u", addr->port);
        }
    } else if (addr->family == TC_AF_INET6) {
        /* RFC 5952: lower case, longest run of two or more zero words compressed. */
        uint16_t w[8];
        for (int k = 0; k < 8; k++) {
            w[k] = (uint16_t)(addr->ip[2 * k] << 8 | addr->ip[2 * k + 1]);
        }
        int best = -1, best_len = 1;
        for (int k = 0; k < 8;) {
            if (w[k] != 0) {
                k++;
                continue;
            }
            int j = k;
            while (j < 8 && w[j] == 0) {
                j++;
            }
            if (j - k > best_len) {
                best = k;
                best_len = j - k;
            }
            k = j;
        }
        n = 0;
        if (with_port) {
            tmp[n++] = '[';
        }
        for (int k = 0; k < 8; k++) {
            if (k == best) {
                n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "::");
                k += best_len - 1;
                continue;
            }
            if (k > 0 && k != best + best_len) {
                tmp[n++] = ':';
            }
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%x", w[k]);
        }
        if (addr->scope_id) {
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%%%u", (unsigned)addr->scope_id);
        }
        if (with_port) {
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "]:%u", addr->port);
        }
    } else {
        return TC_EINVAL;
    }
    if ((size_t)n >= cap) {
        return TC_ELIMIT;
    }
    memcpy(buf, tmp, (size_t)n + 1);
    return n;
}

int tc_addr_is_any(const tc_addr_t *addr)
{
    static const uint8_t zero[16];
    size_t len = addr->family == TC_AF_INET ? 4 : 16;
    return memcmp(addr->ip, zero, len) == 0;
}

/*
 * tc_dns_server.c - the captive portal's DNS responder on the loop (see tc_dns_server.h).
 */
#include "tc_dns_server.h"

#include <stddef.h>
#include <string.h>

#include "tc_addr.h"
#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_internal.h"
#include "tc_sock.h"

/* RFC 1035 4.2.1: queries here are small; longer datagrams are truncated by recvfrom. The same value as the payload
 * size the answers' OPT announces (RFC 6891 6.2.4: the largest datagram the responder takes in). */
#define DNS_MAX_UDP TC_DNS_EDNS_PAYLOAD
#define DNS_BURST 32 /* datagrams per wake-up, so a flood cannot starve TCP connections */

struct tc_dns_server {
    tc_handle_t h; /* first: tc_handle.h */
    tc_regent_t reg;
    tc_loop_t *loop;
    tc_io_t io;
    tc_dns_policy_t policy;
    tc_dns_override_t *overrides;
    char *names; /* storage of the overrides' names */
    tc_dns_server_stats_t stats;
};

static void dns_readable(tc_io_t *io, int revents)
{
    (void)revents;
    tc_dns_server_t *d = (tc_dns_server_t *)((char *)io - offsetof(tc_dns_server_t, io));
    /* The query goes in the loop's shared receive buffer (>= 512 bytes by Kconfig's range), the answer in its send
     * gather buffer: nothing of either on the stack, a device's loop task has little to spare. */
    size_t rsize, osize;
    uint8_t *in = (uint8_t *)tc__rbuf(d->loop, &rsize);
    uint8_t *out = (uint8_t *)tc__gbuf(d->loop, &osize); /* tc_dns_answer() never exceeds the query + 16 bytes */
    if (rsize > DNS_MAX_UDP) {
        rsize = DNS_MAX_UDP;
    }
    for (int i = 0; i < DNS_BURST; i++) {
        tc_addr_t from;
        long n = tc_sock_recvfrom(io->fd, in, rsize, &from);
        if (n < 0) {
            return; /* TC_EAGAIN: drained (other errors: ICMP noise on UDP, nothing to do) */
        }
        d->stats.queries++;
        d->reg.bytes_in += (uint64_t)n;
        d->reg.active_ms = (uint32_t)tc_loop_now(d->loop);
        int len = tc_dns_answer(in, (size_t)n, &d->policy, out, osize);
        long s = len > 0 ? tc_sock_sendto(io->fd, out, (size_t)len, &from) : -1;
        if (len <= 0 || s != len) {
            d->stats.dropped++; /* not a query, or the send failed (buffer full): the client will retry */
            continue;
        }
        d->stats.answered++;
        d->stats.formerr += (out[3] & 0x0f) == TC_DNS_RCODE_FORMERR;
        d->reg.bytes_out += (uint64_t)s;
    }
}

static void dns_stop(tc_handle_t *h, uint32_t deadline_ms);
static const tc_handle_ops_t dns_ops = {TC_HANDLE_DNS, dns_stop, NULL}; /* UDP: a stop completes at once */

static void dns_free(tc_dns_server_t *d)
{
    tc_free(d->overrides);
    tc_free(d->names);
    tc_free(d);
}

int tc_dns_server_start(tc_loop_t *loop, const tc_dns_server_config_t *cfg, tc_dns_server_t **out)
{
    if (loop == NULL || cfg == NULL || out == NULL || cfg->bind_ip == NULL ||
        (cfg->noverrides && cfg->overrides == NULL)) {
        return TC_EINVAL;
    }
    tc_addr_t bind_addr, answer;
    int rc = tc_addr_from_ip(cfg->bind_ip, cfg->port, &bind_addr);
    if (rc == TC_OK) {
        rc = tc_addr_from_ip(cfg->answer_ip ? cfg->answer_ip : cfg->bind_ip, 0, &answer);
    }
    if (rc != TC_OK || bind_addr.family != TC_AF_INET || answer.family != TC_AF_INET) {
        return TC_EBADADDR;
    }
    if (tc_addr_is_any(&answer)) {
        return TC_EBADADDR; /* 0.0.0.0 is no address to send a phone to */
    }
    tc_dns_server_t *d = tc_calloc(1, sizeof(*d));
    if (d == NULL) {
        return TC_ENOMEM;
    }
    d->loop = loop;
    tc__handle_init(&d->h, &dns_ops, loop);
    memcpy(d->policy.ipv4, answer.ip, 4);
    d->policy.ttl_s = cfg->ttl_s;
    if (cfg->noverrides) {
        size_t total = 0;
        for (size_t i = 0; i < cfg->noverrides; i++) {
            if (cfg->overrides[i].name == NULL) {
                dns_free(d);
                return TC_EINVAL;
            }
            total += strlen(cfg->overrides[i].name) + 1;
        }
        d->overrides = tc_calloc(cfg->noverrides, sizeof(*d->overrides));
        d->names = tc_malloc(total);
        if (d->overrides == NULL || d->names == NULL) {
            dns_free(d);
            return TC_ENOMEM;
        }
        char *p = d->names;
        for (size_t i = 0; i < cfg->noverrides; i++) {
            size_t l = strlen(cfg->overrides[i].name) + 1;
            memcpy(p, cfg->overrides[i].name, l);
            d->overrides[i].name = p;
            memcpy(d->overrides[i].ipv4, cfg->overrides[i].ipv4, 4);
            p += l;
        }
        d->policy.overrides = d->overrides;
        d->policy.noverrides = cfg->noverrides;
    }
    int fd = tc_sock_open(TC_AF_INET, TC_SOCK_DGRAM);
    if (fd < 0) {
        dns_free(d);
        return fd;
    }
    rc = tc_sock_bind(fd, &bind_addr);
    if (rc == TC_OK) {
        tc__io_init(&d->io, fd, dns_readable);
        rc = tc__io_start(loop, &d->io, TC_POLLIN);
    }
    if (rc != TC_OK) {
        tc_sock_close(fd);
        dns_free(d);
        return rc;
    }
    tc__reg_add(loop, &d->reg, fd, TC_KIND_UDP, "dns");
    d->reg.role = TC_ROLE_DNS;
    d->reg.state = TC_STATE_LISTENING;
    tc_sock_local_addr(fd, &d->reg.addr);
    tc__handles_add(loop, 1);
    *out = d;
    return TC_OK;
}

uint16_t tc_dns_server_port(const tc_dns_server_t *d)
{
    return d->reg.addr.port;
}

void tc_dns_server_stats(const tc_dns_server_t *d, tc_dns_server_stats_t *out)
{
    *out = d->stats;
}

static void dns_release(tc_handle_t *h)
{
    tc_dns_server_t *d = (tc_dns_server_t *)h;
    tc__io_stop_closing(d->loop, &d->io);
    tc__reg_remove(d->loop, &d->reg);
    tc_sock_close(d->io.fd);
    tc__handles_add(d->loop, -1);
    dns_free(d);
}

static void dns_stop(tc_handle_t *h, uint32_t deadline_ms)
{
    (void)deadline_ms;
    tc__handle_finish(h, dns_release);
}

tc_handle_t *tc_dns_server_handle(tc_dns_server_t *d)
{
    return d ? &d->h : NULL;
}

void tc_dns_server_stop(tc_dns_server_t *d)
{
    if (d != NULL) {
        tc_handle_stop(&d->h, 0, NULL, NULL);
    }
}

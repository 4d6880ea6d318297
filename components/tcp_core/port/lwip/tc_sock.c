/*
 * port/lwip/tc_sock.c - the upstream lwIP backend (host): lwIP's socket API over a TAP device, lwip_poll() for
 * readiness, a loopback UDP pair for wake-ups, and tcp_abort() under the stack's core lock for a real RST.
 *
 * Built against Debian's liblwip-dev 2.1.3 (pkg-config lwip). Facts of that build this file relies on, all from
 * /usr/include/lwip/lwipopts.h:
 *  - LWIP_SOCKET_EXTERNAL_HEADERS: lwIP's sockets use the C library's struct sockaddr, AF_*, SOL_*, POLL*, O_NONBLOCK
 *    and errno values, so the sockaddr code below is the same as the Linux backend's, and struct pollfd is glibc's.
 *  - LWIP_COMPAT_SOCKETS 0: socket(), close(), poll() stay the kernel's; every lwIP call is spelled lwip_*().
 *  - LWIP_SOCKET_POLL 1 (lwip_poll), LWIP_SOCKET_SELECT 0 (no lwip_select).
 *  - LWIP_NETIF_LOOPBACK 1 with LWIP_HAVE_LOOPIF 0: there is no 127.0.0.1 netif, but traffic to 127.0.0.1 is looped
 *    back through the default netif (ip4_route / ip4_input_accept), which carries the wake-up pair.
 *  - LWIP_TCPIP_CORE_LOCKING 1: LOCK_TCPIP_CORE() gives this thread the stack, so raw-API calls (tcp_abort, the pcb
 *    lists) are legal here; sys_check_core_locking() asserts it.
 *  - LWIP_SOCKET_OPEN_COUNT 1 (a Debian patch): sockets are heap nodes in a list, unlimited in number.
 *
 * lwIP is process-wide: tc_sock_global_init() starts its tcpip thread, attaches the TAP device and starts a reader
 * thread, once; all three live until the process exits (lwIP 2.1 cannot stop its tcpip thread). The TAP descriptor
 * is the one kernel descriptor this backend keeps open. lwIP sockets are not kernel descriptors: they never appear
 * in /proc/self/fd, and Debian's build (LWIP_SOCKET_OPEN_COUNT) numbers them from 1, lowest free first.
 *
 * Hazard: TCP_MSS differs between translation units of Debian's liblwip (see the TAP netif below), and in this one
 * too: lwip/sockets.h pulls in <netinet/tcp.h>, whose TCP_MSS (512) replaces lwipopts' 1460. Nothing here may use
 * TCP_MSS or the macros built on it (TCP_SND_QUEUELEN, PBUF_POOL_BUFSIZE).
 */
#include "tc_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lwip/api.h"
#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/priv/sockets_priv.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/sockets.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"

#include "tc_err.h"
#define TC_BSD_POLL_ONLY 1 /* lwIP offers poll() only: tc_sock_bsd.h supplies the readiness-set stubs */
#include "../tc_sock_bsd.h"

#if !LWIP_SOCKET || !LWIP_SOCKET_POLL || !LWIP_TCPIP_CORE_LOCKING || !LWIP_NETIF_LOOPBACK || NO_SYS
#error "port/lwip needs an lwIP built with sockets, lwip_poll, core locking and netif loopback (Debian's liblwip-dev)"
#endif

/* ---- process-wide state ---- */

static pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_tcpip_started; /* under g_init_mu: tcpip_init() ran (it cannot be undone or repeated) */
static int g_ready;         /* atomic: the netif is up, sockets may be made */
static struct netif g_netif;

/* Serialises tc_sock_wake_signal(): lwIP (without LWIP_NETCONN_FULLDUPLEX) wants one thread per socket at a time. */
static pthread_mutex_t g_wake_mu = PTHREAD_MUTEX_INITIALIZER;

/* lwIP reports a refused connect as ECONNRESET (the RST arrives in SYN_SENT: ERR_RST). Sockets with a connect in
 * flight are marked here so tc_sock_error() can say TC_ECONNREFUSED, as the other backends do. */
#define CONNECTING_MAX 4096
static uint8_t g_connecting[CONNECTING_MAX];

static void set_connecting(int fd, uint8_t on)
{
    if (fd >= 0 && fd < CONNECTING_MAX) {
        __atomic_store_n(&g_connecting[fd], on, __ATOMIC_RELAXED);
    }
}

static int is_connecting(int fd)
{
    return fd >= 0 && fd < CONNECTING_MAX && __atomic_load_n(&g_connecting[fd], __ATOMIC_RELAXED);
}

static int ready(void)
{
    return __atomic_load_n(&g_ready, __ATOMIC_ACQUIRE);
}

/* ---- errors and addresses ---- */

static int fail(void)
{
    return tc_bsd_map_errno(errno);
}

static int set_nonblocking(int fd)
{
    return lwip_fcntl(fd, F_SETFL, O_NONBLOCK) == 0 ? TC_OK : fail();
}

/* The TCP pcb behind an lwIP socket, or NULL (not TCP, or the pcb is gone: reset, aborted, closed). Caller holds the
 * core lock, which keeps the pcb alive. lwip_socket_dbg_get_socket() is lwIP's exported debug accessor for the
 * socket table (declared in lwip/priv/sockets_priv.h); the socket stays valid because only its owner thread, the
 * caller, may close it. */
static struct tcp_pcb *tcp_pcb_of(int fd, int *is_tcp)
{
    struct lwip_sock *sock = lwip_socket_dbg_get_socket(fd);
    *is_tcp = 0;
    if (sock == NULL || sock->conn == NULL) {
        return NULL;
    }
    if (NETCONNTYPE_GROUP(netconn_type(sock->conn)) != NETCONN_TCP) {
        return NULL;
    }
    *is_tcp = 1;
    return sock->conn->pcb.tcp;
}

/* ---- the contract ---- */

const char *tc_sock_backend(void)
{
    return "lwip";
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} init_sync_t;

static void tcpip_started(void *arg)
{
    init_sync_t *s = arg;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/*
 * The TAP netif. Debian's liblwip ships contrib's tapif (tapif_init), but it cannot be used:
 *  - it receives into PBUF_POOL pbufs, and in this build those are too small. glibc's <netinet/tcp.h> defines TCP_MSS
 *    as 512, and the Debian lwipopts pulls that header in through LWIP_SOCKET_EXTERNAL_HEADERS, so memp.c (which
 *    includes the socket headers) sized the pool for an MSS of 512 (616-byte elements) while pbuf.c (which does not)
 *    fills them as if it were 1460 (1536-byte payloads). Every full-size frame overflows the heap (AddressSanitizer:
 *    heap-buffer-overflow in pbuf_take from the tapif thread; without it, "malloc(): corrupted top size").
 *  - it calls exit(1) when /dev/net/tun cannot be opened or attached, and takes the device name from an
 *    environment variable (PRECONFIGURED_TAPIF), falling back to running /sbin/ifconfig.
 * So this backend drives the TAP itself, with PBUF_RAM pbufs (sized exactly by pbuf.c; nothing in lwIP's core
 * allocates PBUF_POOL, only drivers do). Frames go out from whichever thread holds the core lock; one reader thread
 * feeds frames in through tcpip_input(), which hands them to the tcpip thread.
 */
static int g_tap_fd = -1;

static err_t tap_linkoutput(struct netif *nif, struct pbuf *p)
{
    (void)nif;
    char frame[1518]; /* Ethernet header + 1500 MTU (+ VLAN tag), no FCS */
    if (p->tot_len > sizeof(frame)) {
        return ERR_IF;
    }
    u16_t len = pbuf_copy_partial(p, frame, p->tot_len, 0);
    ssize_t n;
    do {
        n = write(g_tap_fd, frame, len);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? ERR_OK : ERR_IF; /* a lost frame is a lost packet: TCP retransmits */
}

static err_t tap_netif_init(struct netif *nif)
{
    nif->name[0] = 't';
    nif->name[1] = 'c';
    nif->output = etharp_output;
    nif->output_ip6 = ethip6_output;
    nif->linkoutput = tap_linkoutput;
    nif->mtu = 1500;
    /* A locally administered unicast MAC (02:...): the Linux side of the TAP has its own random one. */
    static const u8_t mac[6] = {0x02, 0x74, 0x63, 0x00, 0x00, 0x02};
    memcpy(nif->hwaddr, mac, sizeof(mac));
    nif->hwaddr_len = sizeof(mac);
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP | NETIF_FLAG_MLD6;
    return ERR_OK;
}

static void *tap_reader(void *arg)
{
    struct netif *nif = arg;
    char frame[1518];
    for (;;) {
        ssize_t n = read(g_tap_fd, frame, sizeof(frame));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return NULL; /* the device went away: lwIP stays up but hears nothing (no exit(), unlike tapif) */
        }
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_RAM);
        if (p == NULL) {
            continue; /* out of memory: drop the frame, as a NIC with no free buffer would */
        }
        pbuf_take(p, frame, (u16_t)n);
        if (nif->input(p, nif) != ERR_OK) {
            pbuf_free(p);
        }
    }
}

/* Attach to an existing TAP device. It must exist already (tools/lwip_netns.sh makes it): TUNSETIFF would otherwise
 * create a fresh one whose Linux side has no address, which nobody could reach. */
static int tap_open(const char *name)
{
    if (if_nametoindex(name) == 0) {
        return TC_EIO;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return TC_EIO;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    memcpy(ifr.ifr_name, name, strlen(name));
    /* EBUSY: another process is attached already (TAP devices without IFF_MULTI_QUEUE take one reader). */
    if (ioctl(fd, TUNSETIFF, (void *)&ifr) != 0) {
        close(fd);
        return TC_EIO;
    }
    return fd;
}

static void ip4_from(const tc_addr_t *a, ip4_addr_t *out)
{
    uint32_t v;
    memcpy(&v, a->ip, 4); /* both are network byte order */
    ip4_addr_set_u32(out, v);
}

static void ip4_mask(uint8_t prefix_len, ip4_addr_t *out)
{
    uint8_t b[4] = {0, 0, 0, 0};
    for (int i = 0; i < prefix_len && i < 32; i++) {
        b[i / 8] |= (uint8_t)(0x80u >> (i % 8));
    }
    uint32_t v;
    memcpy(&v, b, 4);
    ip4_addr_set_u32(out, v);
}

static int env_valid(const tc_sock_env_t *env)
{
    if (env == NULL || env->tap_name == NULL || env->tap_name[0] == 0 || strlen(env->tap_name) >= IFNAMSIZ) {
        return 0;
    }
    if (env->address.family != TC_AF_INET || env->prefix_len == 0 || env->prefix_len > 32) {
        return 0;
    }
    return env->gateway.family == TC_AF_UNSPEC || env->gateway.family == TC_AF_INET;
}

static int global_init_locked(const tc_sock_env_t *env)
{
    if (!env_valid(env)) {
        return TC_EINVAL;
    }
    int fd = tap_open(env->tap_name);
    if (fd < 0) {
        return fd;
    }
    if (!g_tcpip_started) {
        init_sync_t s = {.done = 0};
        pthread_mutex_init(&s.mu, NULL);
        pthread_cond_init(&s.cv, NULL);
        tcpip_init(tcpip_started, &s);
        pthread_mutex_lock(&s.mu);
        while (!s.done) {
            pthread_cond_wait(&s.cv, &s.mu);
        }
        pthread_mutex_unlock(&s.mu);
        pthread_cond_destroy(&s.cv);
        pthread_mutex_destroy(&s.mu);
        g_tcpip_started = 1;
    }

    ip4_addr_t ip, mask, gw;
    ip4_from(&env->address, &ip);
    ip4_mask(env->prefix_len, &mask);
    ip4_addr_set_zero(&gw);
    if (env->gateway.family == TC_AF_INET) {
        ip4_from(&env->gateway, &gw);
    }
    g_tap_fd = fd;
    LOCK_TCPIP_CORE();
    struct netif *nif = netif_add(&g_netif, &ip, &mask, &gw, NULL, tap_netif_init, tcpip_input);
    if (nif != NULL) {
        netif_set_default(nif);
        netif_set_link_up(nif);
        netif_set_up(nif);
        /* An IPv6 link-local address (fe80:: + EUI-64 of the MAC above) so AF_INET6 sockets work on the TAP too. */
        netif_create_ip6_linklocal_address(nif, 1);
    }
    UNLOCK_TCPIP_CORE();
    if (nif == NULL) {
        g_tap_fd = -1;
        close(fd);
        return TC_ENOMEM;
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, tap_reader, nif);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        LOCK_TCPIP_CORE();
        netif_remove(nif);
        UNLOCK_TCPIP_CORE();
        g_tap_fd = -1;
        close(fd);
        return TC_ENOMEM;
    }
    return TC_OK;
}

int tc_sock_global_init(const tc_sock_env_t *env)
{
    pthread_mutex_lock(&g_init_mu);
    int rc = TC_OK;
    if (!ready()) {
        rc = global_init_locked(env);
        if (rc == TC_OK) {
            __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&g_init_mu);
    return rc;
}

int tc_sock_open(int family, int type)
{
    int af = family == TC_AF_INET ? AF_INET : family == TC_AF_INET6 ? AF_INET6 : -1;
    int st = type == TC_SOCK_STREAM ? SOCK_STREAM : type == TC_SOCK_DGRAM ? SOCK_DGRAM : -1;
    if (af < 0 || st < 0 || !ready()) {
        return TC_EINVAL; /* before tc_sock_global_init() lwIP has no core lock to take: it would crash */
    }
    /* lwIP's socket() takes no SOCK_NONBLOCK flag: set O_NONBLOCK right after. */
    int fd = lwip_socket(af, st, 0);
    if (fd < 0) {
        return fail();
    }
    int rc = set_nonblocking(fd);
    if (rc != TC_OK) {
        lwip_close(fd);
        return rc;
    }
    set_connecting(fd, 0);
    return fd;
}

int tc_sock_setopt(int fd, tc_sockopt_t opt, int value)
{
    int rc;
    switch (opt) {
    case TC_OPT_REUSEADDR:
        rc = lwip_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &value, sizeof(value));
        break;
    case TC_OPT_NODELAY:
        rc = lwip_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value));
        break;
    case TC_OPT_KEEPALIVE: {
        /* LWIP_TCP_KEEPALIVE is on in this build: TCP_KEEPIDLE and TCP_KEEPINTVL are in seconds, as on Linux. */
        int on = value > 0;
        rc = lwip_setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
        if (rc == 0 && on) {
            int intvl = value > 3 ? value / 3 : 1, cnt = 3;
            rc = lwip_setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof(value));
            if (rc == 0) {
                rc = lwip_setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
            }
            if (rc == 0) {
                rc = lwip_setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
            }
        }
        break;
    }
    case TC_OPT_V6ONLY:
        rc = lwip_setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, sizeof(value));
        break;
    case TC_OPT_RCVBUF:
        rc = lwip_setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
        break;
    case TC_OPT_SNDBUF:
        /* lwIP 2.1 has no SO_SNDBUF (the send buffer is TCP_SND_BUF, fixed at build time): ENOPROTOOPT. */
        rc = lwip_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
        break;
    default:
        return TC_ENOSYS;
    }
    return rc == 0 ? TC_OK : fail();
}

/* lwIP binds to any address, local or not, and such a socket then never sees a packet; the kernel refuses with
 * EADDRNOTAVAIL. The contract follows the kernel: an IPv4 address must be the wildcard, loopback, or a netif's. */
static int ipv4_is_local(const tc_addr_t *addr)
{
    uint32_t want;
    memcpy(&want, addr->ip, 4);
    if (want == 0 || addr->ip[0] == 127) {
        return 1;
    }
    int found = 0;
    LOCK_TCPIP_CORE();
    struct netif *nif;
    NETIF_FOREACH(nif)
    {
        if (ip4_addr_get_u32(netif_ip4_addr(nif)) == want) {
            found = 1;
        }
    }
    UNLOCK_TCPIP_CORE();
    return found;
}

int tc_sock_bind(int fd, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = tc_bsd_to_sa(addr, &ss);
    if (len == 0) {
        return TC_EINVAL;
    }
    if (addr->family == TC_AF_INET && !ipv4_is_local(addr)) {
        return TC_EADDRNOTAVAIL;
    }
    return lwip_bind(fd, (struct sockaddr *)&ss, len) == 0 ? TC_OK : fail();
}

int tc_sock_listen(int fd, int backlog)
{
    return lwip_listen(fd, backlog) == 0 ? TC_OK : fail();
}

int tc_sock_accept(int fd, tc_addr_t *peer)
{
    struct sockaddr_storage ss;
    int c = -1;
    /* ECONNABORTED: a queued connection died before it was taken; try the next one (bounded). */
    for (int i = 0; i < 16; i++) {
        socklen_t len = sizeof(ss);
        c = lwip_accept(fd, (struct sockaddr *)&ss, &len);
        if (c >= 0 || errno != ECONNABORTED) {
            break;
        }
    }
    if (c < 0) {
        return fail();
    }
    /* lwIP's accepted sockets do not inherit O_NONBLOCK from the listener. */
    int rc = set_nonblocking(c);
    if (rc != TC_OK) {
        lwip_close(c);
        return rc;
    }
    set_connecting(c, 0);
    if (peer) {
        tc_bsd_from_sa(&ss, peer);
    }
    return c;
}

int tc_sock_connect(int fd, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = tc_bsd_to_sa(addr, &ss);
    if (len == 0) {
        return TC_EINVAL;
    }
    if (lwip_connect(fd, (struct sockaddr *)&ss, len) == 0) {
        return TC_OK;
    }
    int rc = fail();
    if (rc == TC_EINPROGRESS) {
        set_connecting(fd, 1);
    }
    return rc;
}

int tc_sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    int connecting = is_connecting(fd);
    set_connecting(fd, 0);
    if (lwip_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return fail();
    }
    if (err == 0) {
        return TC_OK;
    }
    if (connecting && (err == ECONNRESET || err == ECONNABORTED)) {
        return TC_ECONNREFUSED; /* RST in answer to our SYN */
    }
    return tc_bsd_map_errno(err);
}

long tc_sock_send(int fd, const void *buf, size_t len)
{
    ssize_t n = lwip_send(fd, buf, len, 0); /* lwIP raises no SIGPIPE: MSG_NOSIGNAL is not needed */
    return n < 0 ? fail() : (long)n;
}

long tc_sock_recv(int fd, void *buf, size_t len)
{
    ssize_t n = lwip_recv(fd, buf, len, 0);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_sendto(int fd, const void *buf, size_t len, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl = tc_bsd_to_sa(addr, &ss);
    if (sl == 0) {
        return TC_EINVAL;
    }
    ssize_t n = lwip_sendto(fd, buf, len, 0, (struct sockaddr *)&ss, sl);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_recvfrom(int fd, void *buf, size_t len, tc_addr_t *from)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    ssize_t n = lwip_recvfrom(fd, buf, len, 0, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
        return fail();
    }
    if (from) {
        tc_bsd_from_sa(&ss, from);
    }
    return (long)n;
}

int tc_sock_shutdown_write(int fd)
{
    return lwip_shutdown(fd, SHUT_WR) == 0 ? TC_OK : fail();
}

int tc_sock_shutdown_both(int fd)
{
    return lwip_shutdown(fd, SHUT_RDWR) == 0 ? TC_OK : fail();
}

int tc_sock_close(int fd)
{
    set_connecting(fd, 0);
    return lwip_close(fd) == 0 ? TC_OK : fail();
}

typedef struct {
    uint16_t local_port, remote_port;
    ip_addr_t local_ip, remote_ip;
} tuple_t;

static int tuple_match(const struct tcp_pcb *p, const tuple_t *t)
{
    return p->local_port == t->local_port && p->remote_port == t->remote_port &&
           ip_addr_cmp(&p->local_ip, &t->local_ip) && ip_addr_cmp(&p->remote_ip, &t->remote_ip);
}

/*
 * Why not SO_LINGER {1, 0}: lwIP 2.1's lwip_netconn_do_close_internal() only aborts when the pcb still holds unsent
 * or unacknowledged data; with everything acknowledged it calls tcp_close(), which sends FIN and leaves this side in
 * FIN-WAIT and then TIME-WAIT - the very state the caller wanted to avoid (RFC 1337: lwIP then ignores the peer's RST
 * for 2 x MSL).
 *
 * What this does instead: take the core lock, find the socket's pcb and call tcp_abort() on it. tcp_abort() sends
 * RST and frees the pcb, then calls the netconn's error callback (api_msg.c err_tcp) with ERR_ABRT, which clears
 * conn->pcb.tcp and marks the netconn failed - exactly what an RST from the peer does. The following lwip_close()
 * then finds no pcb and only frees the netconn and the socket. Two states are left out: LISTEN (tcp_abort() asserts
 * on listen pcbs; closing a listener sends nothing anyway) and TIME-WAIT, where tcp_abandon() frees the pcb without
 * calling the error callback, which would leave the netconn pointing at freed memory. A socket whose pcb is in
 * TIME-WAIT (possible after tc_sock_shutdown_write() and the peer's FIN) is closed first - closing detaches the pcb,
 * which stays in TIME-WAIT - and the detached pcb is then found by its address tuple and freed with tcp_abort()
 * (no RST: the peer has already closed).
 */
int tc_sock_abort(int fd)
{
    int is_tcp;
    int tw = 0;
    tuple_t t;
    set_connecting(fd, 0);
    LOCK_TCPIP_CORE();
    struct tcp_pcb *pcb = tcp_pcb_of(fd, &is_tcp);
    if (pcb != NULL) {
        if (pcb->state == TIME_WAIT) {
            tw = 1;
            t.local_port = pcb->local_port;
            t.remote_port = pcb->remote_port;
            ip_addr_copy(t.local_ip, pcb->local_ip);
            ip_addr_copy(t.remote_ip, pcb->remote_ip);
        } else if (pcb->state != LISTEN && pcb->state != CLOSED) {
            tcp_abort(pcb);
        }
    }
    UNLOCK_TCPIP_CORE();
    int rc = lwip_close(fd) == 0 ? TC_OK : fail();
    if (tw) {
        LOCK_TCPIP_CORE();
        for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
            if (tuple_match(p, &t)) {
                tcp_abort(p);
                break;
            }
        }
        UNLOCK_TCPIP_CORE();
    }
    return rc;
}

/* tc_sock_close_reap(). The socket's own pcb in TIME-WAIT: note its tuple, close (closing a TIME-WAIT pcb only
 * detaches it from the netconn), then free the detached pcb, which tcp_abort() does without sending anything. A pcb
 * the stack detached itself (FINs crossed: lwip_recv() closes the pcb when it reads the FIN in CLOSING) is found by
 * peer and local port among the pcbs nobody owns any more (callback_arg NULL); still in CLOSING, it is queued and a
 * stack timer frees it once the ACK of our FIN has put it in TIME-WAIT. */
#define REAP_SLOTS 16
#define REAP_RETRY_MS 5
#define REAP_TRIES 20

typedef struct {
    tuple_t t;
    uint8_t tries; /* 0: free slot */
    uint8_t any_local; /* the local port was not known: match the peer only */
} reap_slot_t;

static reap_slot_t g_reap[REAP_SLOTS]; /* under the core lock */
static int g_reap_timer;               /* under the core lock: the stack timer is armed */

static void ip_from_tc(const tc_addr_t *a, ip_addr_t *out)
{
    uint32_t w[4];
    memcpy(w, a->ip, sizeof(w)); /* both network byte order */
#if LWIP_IPV6
    if (a->family == TC_AF_INET6) {
        IP_ADDR6(out, w[0], w[1], w[2], w[3]);
        return;
    }
#endif
    ip_addr_set_ip4_u32_val(*out, w[0]);
}

/* Zones aside: a link-local peer's pcb carries its netif's zone, the registry's address a scope id. */
static int same_ip(const ip_addr_t *a, const ip_addr_t *b)
{
#if LWIP_IPV6
    if (IP_IS_V6(a) != IP_IS_V6(b)) {
        return 0;
    }
    if (IP_IS_V6(a)) {
        return ip6_addr_cmp_zoneless(ip_2_ip6(a), ip_2_ip6(b));
    }
#endif
    return ip4_addr_cmp(ip_2_ip4(a), ip_2_ip4(b));
}

static int reap_match(const struct tcp_pcb *p, const reap_slot_t *r)
{
    return p->callback_arg == NULL && p->remote_port == r->t.remote_port &&
           (r->any_local || p->local_port == r->t.local_port) && same_ip(&p->remote_ip, &r->t.remote_ip);
}

/* Core lock held. 1: a detached TIME-WAIT pcb was freed, 0: one is still closing (keep trying), -1: none left. */
static int reap_detached(const reap_slot_t *r)
{
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
        if (reap_match(p, r)) {
            tcp_abort(p);
            return 1;
        }
    }
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        if (reap_match(p, r) && (p->state == CLOSING || p->state == FIN_WAIT_1 || p->state == FIN_WAIT_2)) {
            return 0;
        }
    }
    return -1;
}

static void reap_timer_cb(void *arg)
{
    (void)arg;
    int pending = 0;
    for (int i = 0; i < REAP_SLOTS; i++) {
        reap_slot_t *r = &g_reap[i];
        if (r->tries == 0) {
            continue;
        }
        if (reap_detached(r) != 0 || --r->tries == 0) {
            r->tries = 0;
        } else {
            pending = 1;
        }
    }
    g_reap_timer = pending;
    if (pending) {
        sys_timeout(REAP_RETRY_MS, reap_timer_cb, NULL);
    }
}

int tc_sock_close_reap(int fd, const tc_addr_t *peer, uint16_t local_port)
{
    int is_tcp;
    int tw = 0;
    tuple_t t;
    set_connecting(fd, 0);
    LOCK_TCPIP_CORE();
    struct tcp_pcb *pcb = tcp_pcb_of(fd, &is_tcp);
    if (pcb != NULL && pcb->state == TIME_WAIT) {
        tw = 1;
        t.local_port = pcb->local_port;
        t.remote_port = pcb->remote_port;
        ip_addr_copy(t.local_ip, pcb->local_ip);
        ip_addr_copy(t.remote_ip, pcb->remote_ip);
    }
    UNLOCK_TCPIP_CORE();
    int rc = lwip_close(fd) == 0 ? TC_OK : fail();
    int reaped = 0;
    LOCK_TCPIP_CORE();
    if (tw) {
        for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
            if (tuple_match(p, &t)) {
                tcp_abort(p);
                reaped = 1;
                break;
            }
        }
    } else if (pcb == NULL && peer != NULL && (peer->family == TC_AF_INET || peer->family == TC_AF_INET6)) {
        reap_slot_t r = {.t.remote_port = peer->port, .t.local_port = local_port, .any_local = local_port == 0};
        ip_from_tc(peer, &r.t.remote_ip);
        int found = reap_detached(&r);
        for (int i = 0; found == 0 && i < REAP_SLOTS; i++) {
            if (g_reap[i].tries == 0) {
                r.tries = REAP_TRIES;
                g_reap[i] = r;
                if (!g_reap_timer) {
                    g_reap_timer = 1;
                    sys_timeout(REAP_RETRY_MS, reap_timer_cb, NULL);
                }
                found = 1;
            }
        }
        reaped = found == 1;
    }
    UNLOCK_TCPIP_CORE();
    return rc == TC_OK ? reaped : rc;
}

int tc_sock_local_addr(int fd, tc_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (lwip_getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return fail();
    }
    tc_bsd_from_sa(&ss, out);
    return TC_OK;
}

int tc_sock_peer_addr(int fd, tc_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (lwip_getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return fail();
    }
    tc_bsd_from_sa(&ss, out);
    return TC_OK;
}

long tc_sock_unacked(int fd)
{
    /* snd_lbb is the sequence number after the last byte handed to the pcb, lastack the peer's last ACK: the
     * difference is what was sent and not acknowledged plus what still waits to be sent, our FIN included (it takes
     * a sequence number) - the same quantity as Linux's SIOCOUTQ. A socket without a pcb (reset, aborted) has
     * nothing left to send. */
    int is_tcp;
    long n = 0;
    LOCK_TCPIP_CORE();
    struct tcp_pcb *pcb = tcp_pcb_of(fd, &is_tcp);
    if (!is_tcp) {
        n = TC_EINVAL;
    } else if (pcb != NULL) {
        n = pcb->state == LISTEN ? TC_EINVAL : (long)(uint32_t)(pcb->snd_lbb - pcb->lastack);
    }
    UNLOCK_TCPIP_CORE();
    return n;
}

int tc_sock_time_wait_count(uint16_t local_port)
{
    if (!ready()) {
        return 0;
    }
    int n = 0;
    LOCK_TCPIP_CORE();
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
        n += local_port == 0 || p->local_port == local_port;
    }
    UNLOCK_TCPIP_CORE();
    return n;
}

int tc_sock_active_count(uint16_t local_port)
{
    if (!ready()) {
        return 0;
    }
    int n = 0;
    LOCK_TCPIP_CORE();
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        n += local_port == 0 || p->local_port == local_port;
    }
    UNLOCK_TCPIP_CORE();
    return n;
}

int tc_sock_poll(tc_pollfd_t *fds, int n, int timeout_ms)
{
    if (n < 0 || (n > 0 && fds == NULL)) {
        return TC_EINVAL;
    }
    struct pollfd *p = tc_bsd_poll_in(fds, n);
    /* lwip_poll() rejects a non-NULL set of 0 entries; NULL with 0 just sleeps. */
    int rc = lwip_poll(n > 0 ? p : NULL, (nfds_t)n, timeout_ms);
    int err = rc < 0 ? fail() : 0;
    int nready = tc_bsd_poll_out(fds, n);
    if (rc < 0) {
        /* lwip_pollscan() stops at the first descriptor that is not a socket and fails the whole call; POSIX poll
         * reports POLLNVAL on that entry instead, which is what the loop expects. */
        return nready > 0 ? nready : err;
    }
    return rc;
}

int tc_sock_wake_open(int *rfd, int *wfd)
{
    /* lwip_poll() sees only lwIP sockets, so the pair is two UDP sockets: the reader bound to 127.0.0.1, the writer
     * connected to it. The datagrams never touch the TAP: ip4_output_if() queues packets for 127/8 on the default
     * netif's loopback queue (LWIP_NETIF_LOOPBACK) and the tcpip thread delivers them. The writer stays unbound:
     * udp_sendto_if() refuses (ERR_RTE) a pcb bound to an address other than the outgoing netif's, and 127.0.0.1 is
     * not the TAP netif's address. */
    if (rfd == NULL || wfd == NULL) {
        return TC_EINVAL;
    }
    tc_addr_t ra = {.family = TC_AF_INET, .ip = {127, 0, 0, 1}, .port = 0};
    int r = tc_sock_open(TC_AF_INET, TC_SOCK_DGRAM);
    if (r < 0) {
        return r;
    }
    int w = -1;
    int rc = tc_sock_bind(r, &ra);
    if (rc == TC_OK) {
        rc = tc_sock_local_addr(r, &ra);
    }
    if (rc == TC_OK) {
        w = tc_sock_open(TC_AF_INET, TC_SOCK_DGRAM);
        rc = w < 0 ? w : tc_sock_connect(w, &ra);
    }
    if (rc != TC_OK) {
        if (w >= 0) {
            lwip_close(w);
        }
        lwip_close(r);
        return rc;
    }
    *rfd = r;
    *wfd = w;
    return TC_OK;
}

int tc_sock_wake_signal(int wfd)
{
    /* A full receive mailbox drops the datagram inside lwIP and send still succeeds: the reader is readable then,
     * which is all a wake-up needs. Not async-signal-safe on this backend (lwIP takes mutexes). */
    static const char one = 1;
    pthread_mutex_lock(&g_wake_mu);
    ssize_t n = lwip_send(wfd, &one, 1, 0);
    int rc = n == 1 ? TC_OK : n < 0 ? fail() : TC_EIO;
    pthread_mutex_unlock(&g_wake_mu);
    return rc == TC_EAGAIN ? TC_OK : rc;
}

void tc_sock_wake_drain(int rfd)
{
    char buf[64];
    for (int i = 0; i < 1024 && lwip_recv(rfd, buf, sizeof(buf), 0) > 0; i++) {
    }
}

void tc_sock_wake_close(int rfd, int wfd)
{
    pthread_mutex_lock(&g_wake_mu); /* no signal is half-way through wfd while it closes */
    if (wfd != rfd) {
        lwip_close(wfd);
    }
    pthread_mutex_unlock(&g_wake_mu);
    lwip_close(rfd);
}

int tc_sock_resolve(const char *host, uint16_t port, tc_addr_t *out)
{
    /* This lwIP is built without LWIP_DNS: only literals resolve, and "localhost", which lwIP loops back itself. */
    if (host == NULL || out == NULL) {
        return TC_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (lwip_inet_pton(AF_INET, host, out->ip) == 1) {
        out->family = TC_AF_INET;
    } else if (lwip_inet_pton(AF_INET6, host, out->ip) == 1) {
        out->family = TC_AF_INET6;
    } else {
        return TC_ERESOLVE;
    }
    out->port = port;
    return TC_OK;
}

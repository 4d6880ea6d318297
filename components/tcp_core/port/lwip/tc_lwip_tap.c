/*
 * port/lwip/tc_lwip_tap.c - the lwIP shim of the host: upstream lwIP (Debian's liblwip-dev 2.1.3) on a TAP device
 * inside a network namespace, so the host tests run tc_sock_lwip.c, the code that ships, on lwIP's own TCP.
 *
 * lwIP is process-wide: tc__lwip_init() starts its tcpip thread, attaches the TAP device and starts a reader thread,
 * once; all three live until the process exits (lwIP 2.1 cannot stop its tcpip thread). The TAP descriptor is the
 * one kernel descriptor this backend keeps open. Host-only, so it uses pthreads and Linux headers directly.
 *
 * Hazard: TCP_MSS differs between translation units of Debian's liblwip (see the TAP netif below), and in this one
 * too: lwip/sockets.h pulls in <netinet/tcp.h>, whose TCP_MSS (512) replaces lwipopts' 1460. Nothing here may use
 * TCP_MSS or the macros built on it (TCP_SND_QUEUELEN, PBUF_POOL_BUFSIZE).
 */
#include "tc_lwip_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/tcpip.h"

#include "tc_err.h"

#if !LWIP_TCPIP_CORE_LOCKING || !LWIP_NETIF_LOOPBACK || NO_SYS
#error "port/lwip's TAP shim needs an lwIP built with core locking and netif loopback (Debian's liblwip-dev)"
#endif

static pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_tcpip_started; /* under g_init_mu: tcpip_init() ran (it cannot be undone or repeated) */
static int g_ready;         /* atomic: the netif is up, sockets may be made */
static struct netif g_netif;
static tc_sock_env_t g_env;              /* under g_init_mu: the configuration the stack runs with */
static char g_env_tap[IFNAMSIZ];         /* g_env.tap_name points here */

const char *tc__lwip_name(void)
{
    return "lwip";
}

int tc__lwip_ready(void)
{
    return __atomic_load_n(&g_ready, __ATOMIC_ACQUIRE);
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

/* Frames from the Linux side wait while this is set (tc__lwip_tap_hold(): the tests' way to order a packet's arrival
 * after a step of their own); the kernel queues the rest on the TAP device. */
static pthread_mutex_t g_hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hold_cv = PTHREAD_COND_INITIALIZER;
static int g_hold; /* under g_hold_mu */

void tc__lwip_tap_hold(int on)
{
    pthread_mutex_lock(&g_hold_mu);
    g_hold = on != 0;
    pthread_cond_broadcast(&g_hold_cv);
    pthread_mutex_unlock(&g_hold_mu);
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
        pthread_mutex_lock(&g_hold_mu);
        while (g_hold) {
            pthread_cond_wait(&g_hold_cv, &g_hold_mu);
        }
        pthread_mutex_unlock(&g_hold_mu);
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

static int same_addr(const tc_addr_t *a, const tc_addr_t *b)
{
    return a->family == b->family && (a->family == TC_AF_UNSPEC || memcmp(a->ip, b->ip, 4) == 0);
}

/* Whether env asks for the stack that runs: one netif, one address, once per process. */
static int env_is_running(const tc_sock_env_t *env)
{
    return env_valid(env) && strcmp(env->tap_name, g_env_tap) == 0 && same_addr(&env->address, &g_env.address) &&
           env->prefix_len == g_env.prefix_len && same_addr(&env->gateway, &g_env.gateway);
}

int tc__lwip_init(const tc_sock_env_t *env)
{
    pthread_mutex_lock(&g_init_mu);
    int rc = TC_OK;
    if (!tc__lwip_ready()) {
        rc = global_init_locked(env);
        if (rc == TC_OK) {
            g_env = *env;
            memcpy(g_env_tap, env->tap_name, strlen(env->tap_name) + 1); /* env_valid(): shorter than IFNAMSIZ */
            g_env.tap_name = g_env_tap;
            __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
        }
    } else if (env != NULL && !env_is_running(env)) {
        rc = TC_EBUSY; /* tcpip_init() and the netif are once per process: another address would be silently lost */
    }
    pthread_mutex_unlock(&g_init_mu);
    return rc;
}

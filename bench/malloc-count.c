/* Counts heap allocations of a process (LD_PRELOAD), for bench/allocs.py: malloc, calloc,
 * realloc, posix_memalign, aligned_alloc and memalign calls are counted with one atomic add
 * each and passed on to glibc. On SIGUSR2 the count so far is appended, as a decimal line, to
 * the file named by MALLOC_COUNT_FILE (opened at load). Requests' allocations are the
 * difference between two signals around a known number of requests.
 * Since fca264b a release claimgate allocates Rust's heap with mimalloc (linked in statically,
 * out of reach of LD_PRELOAD): this counts the C heap only (aws-lc and other C code);
 * bench/allocs.py counts mimalloc's entry points with uprobes besides.
 *
 *   cc -O2 -shared -fPIC -o /tmp/malloc-count.so bench/malloc-count.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong count;
static int out = -1;

void *malloc(size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    void *r = memalign(a, n);
    if (!r) return 12; /* ENOMEM */
    *p = r;
    return 0;
}

static void report(int sig) {
    (void)sig;
    char buf[32];
    int i = sizeof buf;
    unsigned long n = atomic_load(&count);
    buf[--i] = '\n';
    do { buf[--i] = '0' + n % 10; n /= 10; } while (n);
    if (out >= 0) (void)!write(out, buf + i, sizeof buf - i);
}

__attribute__((constructor)) static void init(void) {
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (path) out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = report;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}

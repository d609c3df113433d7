/* Counts wrk's TLS handshakes (LD_PRELOAD into wrk), for bench/load.py --tls: every SSL_connect
 * that completes (returns 1) is counted, with whether it resumed a session and whether it
 * negotiated TLS 1.3; the first handshake's cipher suite is kept. At exit the counts are written
 * as one line of JSON to the file named by TLS_COUNT_FILE:
 *   {"handshakes":N,"resumed":N,"tls13":N,"cipher":"TLS_AES_256_GCM_SHA384"}
 * With TLS_COUNT_NO_RESUME=1 the session an SSL object keeps across SSL_clear (wrk reuses one
 * SSL object per connection slot: SSL_shutdown, SSL_clear, SSL_connect on the next socket) is
 * dropped, so every new connection makes a full handshake instead of resuming; without it wrk
 * offers the last ticket it got (a resumption when the server issued one).
 *
 *   cc -O2 -shared -fPIC -o /tmp/tls-count.so bench/tls-count.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
typedef struct ssl_cipher_st SSL_CIPHER;

/* From libssl (wrk links it): resolved at call time through the dynamic linker. */
extern int SSL_session_reused(const SSL *);
extern int SSL_version(const SSL *);
extern int SSL_set_session(SSL *, SSL_SESSION *);
extern const SSL_CIPHER *SSL_get_current_cipher(const SSL *);
extern const char *SSL_CIPHER_get_name(const SSL_CIPHER *);

#define TLS1_3_VERSION 0x0304

static atomic_ulong handshakes, resumed, tls13;
static char cipher[64];
static atomic_int cipher_taken;
static int no_resume;

int SSL_connect(SSL *ssl) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
    int r = real(ssl);
    if (r == 1) {
        atomic_fetch_add(&handshakes, 1);
        if (SSL_session_reused(ssl)) atomic_fetch_add(&resumed, 1);
        if (SSL_version(ssl) == TLS1_3_VERSION) atomic_fetch_add(&tls13, 1);
        if (atomic_exchange(&cipher_taken, 1) == 0) {
            const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
            snprintf(cipher, sizeof cipher, "%s", c ? SSL_CIPHER_get_name(c) : "?");
        }
    }
    return r;
}

int SSL_clear(SSL *ssl) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    int r = real(ssl);
    if (no_resume) SSL_set_session(ssl, NULL);
    return r;
}

__attribute__((constructor)) static void init(void) {
    const char *v = getenv("TLS_COUNT_NO_RESUME");
    no_resume = v && strcmp(v, "1") == 0;
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("TLS_COUNT_FILE");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"handshakes\":%lu,\"resumed\":%lu,\"tls13\":%lu,\"cipher\":\"%s\"}\n",
            atomic_load(&handshakes), atomic_load(&resumed), atomic_load(&tls13), cipher);
    fclose(f);
}

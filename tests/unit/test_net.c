/* net/: listen, accept, dial (with a source address), plain and TLS round trips, bounded reads,
 * deadlines, back-off. Everything on loopback; the TLS certificate is made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/clock.h"
#include "net/conn.h"
#include "net/sock.h"

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);

    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

/* A listener on 127.0.0.1 (any port), a dialled and an accepted connection. */
static void pair(const char *source, int *lfd, struct hx_conn *client, struct hx_conn *server)
{
    char why[200];
    int cfd, sfd;

    assert_int_equal(hx_net_listen_tcp("127.0.0.1", 0, 8, true, lfd, why, sizeof(why)), HX_OK);
    assert_int_equal(hx_net_dial_tcp("127.0.0.1", bound_port(*lfd), source, hx_deadline_in_ms(5000),
                                     &cfd, why, sizeof(why)),
                     HX_OK);
    assert_int_equal(hx_net_accept(*lfd, &sfd), HX_OK);
    hx_conn_init(client, cfd);
    hx_conn_init(server, sfd);
}

static void plain_round_trip(void **state)
{
    (void)state;
    struct hx_conn c, s;
    uint8_t buf[16];
    size_t got;
    int lfd;

    pair(NULL, &lfd, &c, &s);
    assert_int_equal(hx_conn_write_all(&c, "hello, net", 10, hx_deadline_in_ms(1000)), HX_OK);
    assert_int_equal(hx_conn_read_exact(&s, buf, sizeof(buf), 10, hx_deadline_in_ms(1000)), HX_OK);
    assert_memory_equal(buf, "hello, net", 10);
    assert_int_equal(hx_conn_write_all(&s, "ok", 2, HX_DEADLINE_NEVER), HX_OK);
    assert_int_equal(hx_conn_read_some(&c, buf, sizeof(buf), &got, HX_DEADLINE_NEVER), HX_OK);
    assert_int_equal(got, 2);
    /* the other side closes: the reader hears it, it does not wait */
    hx_conn_wipe(&s);
    assert_int_equal(hx_conn_read_some(&c, buf, sizeof(buf), &got, HX_DEADLINE_NEVER),
                     HX_ERR_IO_CLOSED);
    hx_conn_wipe(&c);
    hx_conn_wipe(&c); /* twice is harmless */
    close(lfd);
}

struct blocked_reader {
    struct hx_conn *conn;
    int64_t deadline;
    hx_err result;
};

static void *blocked_reader_main(void *arg)
{
    struct blocked_reader *b = arg;
    uint8_t buf[8];
    size_t got;

    b->result = hx_conn_read_some(b->conn, buf, sizeof(buf), &got, b->deadline);
    return NULL;
}

/* How servers stop their connection threads: shutdown() from another thread ends any wait. */
static void shutdown_ends_a_wait(void **state)
{
    (void)state;
    int64_t deadlines[2] = {HX_DEADLINE_NEVER, 0};
    struct hx_conn c, s;
    int lfd;

    deadlines[1] = hx_deadline_in_ms(60000);
    for (int i = 0; i < 2; i++) {
        struct blocked_reader b = {&s, deadlines[i], HX_ERR_INTERNAL};
        pthread_t th;
        pair(NULL, &lfd, &c, &s);
        assert_int_equal(pthread_create(&th, NULL, blocked_reader_main, &b), 0);
        usleep(100000);
        shutdown(s.fd, SHUT_RDWR);
        pthread_join(th, NULL);
        assert_int_equal(b.result, HX_ERR_IO_CLOSED);
        hx_conn_wipe(&c);
        hx_conn_wipe(&s);
        close(lfd);
    }
}

static void bounded_reads_refuse_oversize(void **state)
{
    (void)state;
    struct hx_conn c, s;
    uint8_t buf[8];
    size_t got;
    int lfd;

    pair(NULL, &lfd, &c, &s);
    assert_int_equal(hx_conn_write_all(&c, "0123456789abcdef", 16, HX_DEADLINE_NEVER), HX_OK);
    /* a header's length field asks for more than the buffer: refused before reading */
    assert_int_equal(hx_conn_read_exact(&s, buf, sizeof(buf), 9, HX_DEADLINE_NEVER),
                     HX_ERR_TOO_LARGE);
    assert_int_equal(hx_conn_read_exact(&s, buf, sizeof(buf), 8, hx_deadline_in_ms(1000)), HX_OK);
    assert_memory_equal(buf, "01234567", 8);
    /* read-some never writes past its capacity */
    assert_int_equal(hx_conn_read_some(&s, buf, 4, &got, hx_deadline_in_ms(1000)), HX_OK);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "89ab", 4);
    assert_int_equal(hx_conn_read_some(&s, buf, 0, &got, HX_DEADLINE_NEVER), HX_ERR_INVALID_ARG);
    hx_conn_wipe(&c);
    hx_conn_wipe(&s);
    close(lfd);
}

static void deadlines_expire(void **state)
{
    (void)state;
    struct hx_conn c, s;
    uint8_t buf[8];
    size_t got;
    int lfd;

    pair(NULL, &lfd, &c, &s);
    int64_t start = hx_monotime_ns();
    assert_int_equal(hx_conn_read_some(&s, buf, sizeof(buf), &got, hx_deadline_in_ms(150)),
                     HX_ERR_IO_TIMEOUT);
    int64_t took = hx_monotime_ns() - start;
    assert_true(took >= 140000000LL && took < 5000000000LL);
    assert_int_equal(got, 0);
    /* an exact read that gets half its bytes times out too */
    assert_int_equal(hx_conn_write_all(&c, "abc", 3, HX_DEADLINE_NEVER), HX_OK);
    assert_int_equal(hx_conn_read_exact(&s, buf, sizeof(buf), 6, hx_deadline_in_ms(100)),
                     HX_ERR_IO_TIMEOUT);
    /* a deadline already passed does not wait at all */
    assert_int_equal(hx_conn_read_some(&s, buf, sizeof(buf), &got, hx_deadline_in_ms(0)),
                     HX_ERR_IO_TIMEOUT);
    /* a TLS handshake with a silent peer ends at its deadline */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(hx_conn_tls_connect(&c, ctx, hx_deadline_in_ms(100)), HX_ERR_IO_TIMEOUT);
    SSL_CTX_free(ctx);
    hx_conn_wipe(&c);
    hx_conn_wipe(&s);
    close(lfd);
}

static void dial_from_a_source_address(void **state)
{
    (void)state;
    struct hx_conn c, s;
    char ip[64];
    int lfd;

    /* Two nodes on one host: the listener sees the dialler's own address, not 127.0.0.1. */
    pair("127.0.0.2", &lfd, &c, &s);
    assert_true(hx_net_peer_ip(s.fd, ip, sizeof(ip)));
    assert_string_equal(ip, "127.0.0.2");
    hx_conn_wipe(&c);
    hx_conn_wipe(&s);
    close(lfd);
    /* a wildcard source binds nothing: the kernel picks */
    pair("0.0.0.0", &lfd, &c, &s);
    assert_true(hx_net_peer_ip(s.fd, ip, sizeof(ip)));
    assert_string_equal(ip, "127.0.0.1");
    hx_conn_wipe(&c);
    hx_conn_wipe(&s);
    close(lfd);
}

static void dial_and_listen_failures(void **state)
{
    (void)state;
    char why[200];
    int fd, lfd;

    /* a closed port: refused, quickly */
    assert_int_equal(hx_net_listen_tcp("127.0.0.1", 0, 8, false, &lfd, why, sizeof(why)), HX_OK);
    uint16_t port = bound_port(lfd);
    close(lfd);
    assert_int_equal(
        hx_net_dial_tcp("127.0.0.1", port, NULL, hx_deadline_in_ms(2000), &fd, why, sizeof(why)),
        HX_ERR_IO);
    assert_int_equal(fd, -1);
    assert_int_equal(hx_net_dial_tcp("no-such-host.invalid", port, NULL, hx_deadline_in_ms(2000),
                                     &fd, why, sizeof(why)),
                     HX_ERR_CONFIG);
    /* the API's loopback rule: refused before binding */
    assert_int_equal(hx_net_listen_tcp("0.0.0.0", 0, 8, true, &lfd, why, sizeof(why)),
                     HX_ERR_IO_PERM);
}

static void unix_round_trip(void **state)
{
    (void)state;
    char path[64], why[200];
    struct hx_conn c, s;
    uint8_t buf[4];
    int lfd, cfd, sfd;

    snprintf(path, sizeof(path), "/tmp/hx-test-net-%d.sock", (int)getpid());
    assert_int_equal(hx_net_listen_unix(path, 4, 077, &lfd, why, sizeof(why)), HX_OK);
    assert_int_equal(hx_net_dial_unix(path, &cfd, why, sizeof(why)), HX_OK);
    assert_int_equal(hx_net_accept(lfd, &sfd), HX_OK);
    uid_t uid;
    gid_t gid;
    assert_int_equal(hx_net_peer_cred(sfd, &uid, &gid), HX_OK);
    assert_int_equal(uid, getuid());
    assert_int_equal(gid, getgid());
    hx_conn_init(&c, cfd);
    hx_conn_init(&s, sfd);
    assert_int_equal(hx_conn_write_all(&c, "ping", 4, HX_DEADLINE_NEVER), HX_OK);
    assert_int_equal(hx_conn_read_exact(&s, buf, sizeof(buf), 4, hx_deadline_in_ms(1000)), HX_OK);
    assert_memory_equal(buf, "ping", 4);
    hx_conn_wipe(&c);
    hx_conn_wipe(&s);
    /* a shut-down listener ends its accept loop */
    shutdown(lfd, SHUT_RDWR);
    assert_int_equal(hx_net_accept(lfd, &sfd), HX_ERR_IO_CLOSED);
    close(lfd);
    unlink(path);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(hx_net_listen_unix(longpath, 4, 077, &lfd, why, sizeof(why)), HX_ERR_CONFIG);
}

/* ---- TLS with a throwaway self-signed certificate ---- */

static void make_cert(EVP_PKEY **key, X509 **cert)
{
    X509_NAME *name;

    *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(*key);
    *cert = X509_new();
    assert_non_null(*cert);
    assert_int_equal(X509_set_version(*cert, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(*cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(*cert), 3600);
    assert_int_equal(X509_set_pubkey(*cert, *key), 1);
    name = X509_get_subject_name(*cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"hx-test", -1, -1,
                               0);
    assert_int_equal(X509_set_issuer_name(*cert, name), 1);
    assert_true(X509_sign(*cert, *key, EVP_sha256()) > 0);
}

struct tls_server {
    struct hx_conn *conn;
    SSL_CTX *ctx;
    hx_err result;
};

static void *tls_server_main(void *arg)
{
    struct tls_server *t = arg;
    uint8_t buf[64];
    size_t got;

    if ((t->result = hx_conn_tls_accept(t->conn, t->ctx, hx_deadline_in_ms(5000))) != HX_OK ||
        (t->result = hx_conn_read_some(t->conn, buf, sizeof(buf), &got, hx_deadline_in_ms(5000))) !=
            HX_OK) {
        return NULL;
    }
    t->result = hx_conn_write_all(t->conn, buf, got, hx_deadline_in_ms(5000));
    return NULL;
}

static void tls_round_trip(void **state)
{
    (void)state;
    struct hx_conn c, s;
    struct tls_server t;
    pthread_t th;
    EVP_PKEY *key;
    X509 *cert;
    uint8_t buf[64];
    size_t got = 0, put;
    short want;
    int lfd;

    make_cert(&key, &cert);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(sctx);
    assert_non_null(cctx);
    assert_int_equal(SSL_CTX_use_certificate(sctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(sctx, key), 1);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), cert), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);

    pair(NULL, &lfd, &c, &s);
    t = (struct tls_server){&s, sctx, HX_ERR_INTERNAL};
    assert_int_equal(pthread_create(&th, NULL, tls_server_main, &t), 0);
    assert_int_equal(hx_conn_tls_connect(&c, cctx, hx_deadline_in_ms(5000)), HX_OK);
    /* the non-blocking calls, as a poll loop uses them */
    assert_int_equal(hx_conn_send_nb(&c, "over tls", 8, &put, &want), HX_OK);
    assert_int_equal(put, 8);
    assert_int_equal(hx_conn_read_some(&c, buf, sizeof(buf), &got, hx_deadline_in_ms(5000)), HX_OK);
    assert_int_equal(got, 8);
    assert_memory_equal(buf, "over tls", 8);
    pthread_join(th, NULL);
    assert_int_equal(t.result, HX_OK);
    assert_false(hx_conn_pending(&c));
    assert_int_equal(hx_conn_recv_nb(&c, buf, sizeof(buf), &got, &want), HX_OK);
    assert_int_equal(got, 0); /* nothing more: would block */
    hx_conn_tls_close(&s);
    hx_conn_wipe(&s);
    assert_int_equal(hx_conn_read_some(&c, buf, sizeof(buf), &got, hx_deadline_in_ms(5000)),
                     HX_ERR_IO_CLOSED);
    hx_conn_wipe(&c);

    /* a client that does not trust the server's certificate: the handshake fails */
    SSL_CTX *strict = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(strict, SSL_VERIFY_PEER, NULL);
    pair(NULL, &lfd, &c, &s);
    t = (struct tls_server){&s, sctx, HX_OK};
    assert_int_equal(pthread_create(&th, NULL, tls_server_main, &t), 0);
    assert_int_equal(hx_conn_tls_connect(&c, strict, hx_deadline_in_ms(5000)), HX_ERR_VERIFY);
    assert_int_not_equal(SSL_get_verify_result(c.ssl), X509_V_OK);
    hx_conn_wipe(&c);
    pthread_join(th, NULL);
    assert_int_not_equal(t.result, HX_OK);
    hx_conn_wipe(&s);
    close(lfd);
    SSL_CTX_free(strict);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void backoff_grows_with_jitter_and_caps(void **state)
{
    (void)state;
    struct hx_backoff b;
    double cur = 0.1;

    hx_backoff_init(&b, 0.1, 2.0);
    for (int i = 0; i < 10; i++) {
        double d = hx_backoff_next(&b);
        assert_true(d >= cur / 2 - 1e-9 && d <= cur + 1e-9);
        cur = cur * 2 > 2.0 ? 2.0 : cur * 2;
    }
    assert_true(b.cur_s == 2.0);
    hx_backoff_reset(&b);
    assert_true(hx_backoff_next(&b) <= 0.1 + 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_round_trip),
        cmocka_unit_test(shutdown_ends_a_wait),
        cmocka_unit_test(bounded_reads_refuse_oversize),
        cmocka_unit_test(deadlines_expire),
        cmocka_unit_test(dial_from_a_source_address),
        cmocka_unit_test(dial_and_listen_failures),
        cmocka_unit_test(unix_round_trip),
        cmocka_unit_test(tls_round_trip),
        cmocka_unit_test(backoff_grows_with_jitter_and_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

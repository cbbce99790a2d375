/*
 * The store's secret side (seal.h): its directory (0700), the storage key file (0600, made
 * once) and AES-256-GCM sealing of each key, bound to its stream and position.
 */
#include "store/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define STORAGE_KEY_LEN 32

/* ---- files ---- */

hx_err hx_store_make_dir(const char *dir, char *why, size_t why_len)
{
    struct stat sb;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, why_len, "cannot create state directory %s: %s", dir, strerror(errno));
        return HX_ERR_IO;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(why, why_len, "state directory %s is not a directory", dir);
        return HX_ERR_IO;
    }
    if ((sb.st_mode & 022) != 0 || sb.st_uid != geteuid()) {
        snprintf(why, why_len, "state directory %s is writable by others or not ours", dir);
        return HX_ERR_IO_PERM;
    }
    return HX_OK;
}

/* Reads the storage key, or makes one (O_EXCL: two starts never make two keys). */
hx_err hx_store_storage_key(const char *dir, struct hx_secret **out, char *why, size_t why_len)
{
    char path[4096];
    uint8_t buf[STORAGE_KEY_LEN + 1];
    struct stat sb;
    ssize_t n;
    int fd;
    hx_err e;

    snprintf(path, sizeof(path), "%s/storage.key", dir);
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 && errno == ENOENT) {
        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
            snprintf(why, why_len, "cannot create %s: %s", path, strerror(errno));
            return HX_ERR_IO;
        }
        if (RAND_priv_bytes(buf, STORAGE_KEY_LEN) != 1) {
            close(fd);
            unlink(path);
            snprintf(why, why_len, "no randomness for the storage key");
            return HX_ERR_RANDOM;
        }
        if (write(fd, buf, STORAGE_KEY_LEN) != STORAGE_KEY_LEN || fsync(fd) != 0) {
            OPENSSL_cleanse(buf, sizeof(buf));
            close(fd);
            unlink(path);
            snprintf(why, why_len, "cannot write %s", path);
            return HX_ERR_IO;
        }
        close(fd);
        e = hx_secret_from(buf, STORAGE_KEY_LEN, out);
        OPENSSL_cleanse(buf, sizeof(buf));
        return e;
    }
    if (fd < 0) {
        snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        return HX_ERR_IO;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0 ||
        sb.st_uid != geteuid()) {
        close(fd);
        snprintf(why, why_len, "%s must be a regular file of ours with mode 0600", path);
        return HX_ERR_IO_PERM;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n != STORAGE_KEY_LEN) {
        OPENSSL_cleanse(buf, sizeof(buf));
        snprintf(why, why_len, "%s must hold exactly %d bytes", path, STORAGE_KEY_LEN);
        return HX_ERR_BAD_VALUE;
    }
    e = hx_secret_from(buf, STORAGE_KEY_LEN, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    return e;
}

/* ---- sealing ---- */

static void aad_of(const struct hx_uuid *ksid, uint64_t pos, uint8_t aad[24])
{
    memcpy(aad, ksid->b, 16);
    for (int i = 0; i < 8; i++) {
        aad[16 + i] = (uint8_t)(pos >> (56 - 8 * i));
    }
}

/* out: nonce || ciphertext || tag (len + 28 bytes). */
hx_err hx_store_seal(const struct hx_secret *storage, const struct hx_uuid *ksid, uint64_t pos,
                     const struct hx_secret *k, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    size_t len = hx_secret_len(k);
    uint8_t aad[24];
    int n, ok;

    aad_of(ksid, pos, aad);
    ok = c != NULL && RAND_bytes(out, NONCE_LEN) == 1 &&
         EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), hx_secret_data(storage), out, NULL) == 1 &&
         EVP_EncryptUpdate(c, NULL, &n, aad, sizeof(aad)) == 1 &&
         EVP_EncryptUpdate(c, out + NONCE_LEN, &n, hx_secret_data(k), (int)len) == 1 &&
         EVP_EncryptFinal_ex(c, out + NONCE_LEN + n, &n) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + len) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? HX_OK : HX_ERR_CRYPTO;
}

hx_err hx_store_unseal(const struct hx_secret *storage, const struct hx_uuid *ksid, uint64_t pos,
                       const uint8_t *in, size_t in_len, struct hx_secret **out)
{
    EVP_CIPHER_CTX *c;
    struct hx_secret *k = NULL;
    size_t len;
    uint8_t aad[24];
    int n, ok;
    hx_err e;

    if (in_len <= NONCE_LEN + TAG_LEN || in_len - NONCE_LEN - TAG_LEN > HX_SECRET_MAX_LEN) {
        return HX_ERR_VERIFY;
    }
    len = in_len - NONCE_LEN - TAG_LEN;
    if ((e = hx_secret_new(len, &k)) != HX_OK) {
        return e;
    }
    aad_of(ksid, pos, aad);
    c = EVP_CIPHER_CTX_new();
    ok = c != NULL &&
         EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), hx_secret_data(storage), in, NULL) == 1 &&
         EVP_DecryptUpdate(c, NULL, &n, aad, sizeof(aad)) == 1 &&
         EVP_DecryptUpdate(c, hx_secret_data_mut(k), &n, in + NONCE_LEN, (int)len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(in + NONCE_LEN + len)) ==
             1 &&
         EVP_DecryptFinal_ex(c, hx_secret_data_mut(k) + n, &n) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        hx_secret_free(k);
        return HX_ERR_VERIFY;
    }
    *out = k;
    return HX_OK;
}

/*
 * manifest.c — the facts model.json records about a model, computed rather
 * than trusted: the sha256 of the bytes (OpenSSL's EVP digest), and from
 * the engine's public API the signature (input and output names, dtypes,
 * shapes with symbolic dimensions) and the opsets the model imports.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool fd_sha256(int fd, char hex[65], uint64_t *size, const char *label, char *err, size_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    bool ok = ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    uint64_t total = 0;
    if (!ok)
        snprintf(err, n, "%s: cannot start sha256", label);
    while (ok) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, n, "%s: read failed: %s", label, strerror(errno));
            ok = false;
        } else if (r == 0) {
            break;
        } else {
            total += (uint64_t)r;
            ok = EVP_DigestUpdate(ctx, buf, (size_t)r) == 1;
            if (!ok)
                snprintf(err, n, "%s: sha256 failed", label);
        }
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (ok && (EVP_DigestFinal_ex(ctx, digest, &len) != 1 || len != 32)) {
        snprintf(err, n, "%s: sha256 failed", label);
        ok = false;
    }
    for (unsigned int i = 0; ok && i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if (ok && size)
        *size = total;
    free(buf);
    EVP_MD_CTX_free(ctx);
    return ok;
}

bool file_sha256(const char *path, char hex[65], char *err, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = fd_sha256(fd, hex, NULL, path, err, n);
    close(fd);
    return ok;
}

bool valid_task(const char *task)
{
    return strcmp(task, "classification") == 0 || strcmp(task, "regression") == 0 ||
           strcmp(task, "clustering") == 0 || strcmp(task, "other") == 0;
}

/* "float32" for tensors; sequence and map types spelled out as
 * "sequence<map<int64,float32>>", the way `inferd inspect` prints them. */
static json_t *dtype_json(const ifd_type_info *t)
{
    char buf[96];
    return json_string(ifd_type_name(t, buf, sizeof(buf)));
}

/* Dimensions: a number, the symbolic name, or null when unknown; the
 * whole shape is null for unknown rank and for sequences and maps. */
static json_t *shape_json(const ifd_type_info *t)
{
    if (t->kind != IFD_VALUE_TENSOR || t->rank < 0)
        return json_null();
    json_t *shape = json_array();
    for (int i = 0; i < t->rank && i < IFD_MAX_RANK; i++) {
        if (t->dims[i] >= 0)
            json_array_append_new(shape, json_integer((json_int_t)t->dims[i]));
        else if (t->dim_params[i] && *t->dim_params[i])
            json_array_append_new(shape, json_string(t->dim_params[i]));
        else
            json_array_append_new(shape, json_null());
    }
    return shape;
}

static json_t *io_json(const ifd_io_info *io)
{
    return json_pack("{s:s, s:o, s:o}", "name", io->name ? io->name : "", "dtype",
                     dtype_json(&io->type), "shape", shape_json(&io->type));
}

json_t *manifest_signature(const ifd_model *model)
{
    json_t *inputs = json_array(), *outputs = json_array();
    for (size_t i = 0; i < ifd_model_input_count(model); i++)
        json_array_append_new(inputs, io_json(ifd_model_input(model, i)));
    for (size_t i = 0; i < ifd_model_output_count(model); i++)
        json_array_append_new(outputs, io_json(ifd_model_output(model, i)));
    return json_pack("{s:o, s:o}", "inputs", inputs, "outputs", outputs);
}

json_t *manifest_opsets(const ifd_model *model)
{
    json_t *opsets = json_object();
    for (size_t i = 0; i < ifd_model_opset_count(model); i++) {
        ifd_opset o = ifd_model_opset(model, i);
        const char *domain = o.domain && *o.domain ? o.domain : "ai.onnx";
        json_object_set_new(opsets, domain, json_integer((json_int_t)o.version));
    }
    return opsets;
}

/*
 * image_request.c — finding the image in a request and answering with the
 * top-k classes (see image_request.h). Multipart bodies are parsed by
 * libmicrohttpd's own post processor, fed the body the server has already
 * read whole (so the body limit and the request deadline of server.c
 * apply to uploads as to any body); the image bytes then go through
 * src/image, whose limits (encoded size, pixels announced by the header)
 * are checked before any pixel is decoded.
 */
#include "image_request.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model_set.h"

bool image_request_input(http_request *req, const model_version *m, const char *wanted, size_t *index,
                         image_spec *spec)
{
    const json_t *declared = m->manifest ? json_object_get(m->manifest, "preprocessing") : NULL;
    size_t inputs = ifd_model_input_count(m->model);
    if (!declared || json_object_size(declared) == 0) {
        http_reply_error(req, 400, "model '%s' takes no image: its manifest declares no image preprocessing "
                         "(\"preprocessing\": {\"%s\": {\"kind\": \"image\", ...}}); send tensors as JSON",
                         m->name, inputs ? ifd_model_input(m->model, 0)->name : "INPUT");
        return false;
    }
    image_spec *specs = calloc(inputs + 1, sizeof(*specs));
    bool *has = calloc(inputs + 1, sizeof(*has));
    char err[1024];
    bool ok = specs && has && image_preprocessing_parse(declared, m->model, "model.json: preprocessing", specs,
                                                        has, err, sizeof(err));
    if (!ok) {
        http_reply_error(req, 500, "model '%s': %s", m->name, specs && has ? err : "out of memory");
    } else if (wanted) {
        /* a V2 input named by the request: that input must take an image */
        size_t i = 0;
        while (i < inputs && strcmp(ifd_model_input(m->model, i)->name, wanted) != 0)
            i++;
        if (i == inputs || !has[i]) {
            http_reply_error(req, 400, "input '%s' of model '%s' takes no image (its manifest declares no image "
                             "preprocessing for it)", wanted, m->name);
            ok = false;
        } else {
            *index = i;
            *spec = specs[i];
        }
    } else if (inputs != 1) {
        /* an upload or a raw body feeds exactly one input */
        http_reply_error(req, 400, "model '%s' has %zu inputs and an image fills only one: send a V2 request "
                         "to /v2/models/%s/infer", m->name, inputs, m->name);
        ok = false;
    } else {
        *index = 0;
        *spec = specs[0];
    }
    free(specs);
    free(has);
    return ok;
}

ifd_value *image_request_tensor(http_request *req, const image_spec *spec, const void *data, size_t size,
                                const char *label)
{
    char err[1024];
    image_limits limits = {0};
    ifd_value *x = image_prepare(data, size, spec, &limits, label, err, sizeof(err));
    if (!x)
        http_reply_error(req, size > IMAGE_DEFAULT_MAX_ENCODED_BYTES ? 413 : 400, "%s", err);
    return x;
}

static bool content_type_is(const http_request *req, const char *want)
{
    const char *type = http_header(req, "Content-Type");
    if (!type)
        return false;
    while (*type == ' ' || *type == '\t')
        type++;
    size_t n = strlen(want);
    return strncasecmp(type, want, n) == 0 &&
           (type[n] == '\0' || type[n] == ';' || type[n] == ' ' || type[n] == '\t');
}

bool image_request_is_multipart(const http_request *req)
{
    return content_type_is(req, "multipart/form-data");
}

bool image_request_is_raw_image(const http_request *req)
{
    return content_type_is(req, "image/jpeg") || content_type_is(req, "image/png");
}

/* ---- multipart ------------------------------------------------------------- */

#define MAX_FIELDS_NAMED 8

/* One field's bytes, gathered from the post processor's chunks. */
typedef struct upload_field {
    char name[128];
    uint8_t *data;
    size_t size, cap;
    int parts;                  /* parts sent under this name: more than one is refused */
} upload_field;

typedef struct upload {
    const char *wanted[2];      /* the input's name, then "image" */
    upload_field found[2];
    bool seen[2];
    char others[512];           /* names of the other fields, for the message */
    int n_others;
    bool out_of_memory;
} upload;

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                const char *content_type, const char *transfer_encoding, const char *data,
                                uint64_t off, size_t size)
{
    upload *u = cls;
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
    if (!key)
        return MHD_YES;
    for (int i = 0; i < 2; i++) {
        if (!u->wanted[i] || strcmp(key, u->wanted[i]) != 0)
            continue;
        upload_field *f = &u->found[i];
        u->seen[i] = true;
        snprintf(f->name, sizeof(f->name), "%s", key);
        /* each part begins at offset 0: a second part under the same name
         * must not be glued to the first */
        if (off == 0 && (size > 0 || f->parts == 0))
            f->parts++;
        if (size == 0 || f->parts > 1)
            return MHD_YES;
        if (f->size + size > f->cap) {
            size_t cap = f->cap ? f->cap : 65536;
            while (cap < f->size + size)
                cap *= 2;
            uint8_t *grown = realloc(f->data, cap);
            if (!grown) {
                u->out_of_memory = true;
                return MHD_NO;
            }
            f->data = grown;
            f->cap = cap;
        }
        memcpy(f->data + f->size, data, size);
        f->size += size;
        return MHD_YES;
    }
    /* another field: remember its name once */
    if (u->n_others < MAX_FIELDS_NAMED && !strstr(u->others, key)) {
        size_t used = strlen(u->others);
        snprintf(u->others + used, sizeof(u->others) - used, "%s'%s'", used ? ", " : "", key);
        u->n_others++;
    }
    return MHD_YES;
}

bool image_request_multipart(http_request *req, const char *input_name, uint8_t **data, size_t *size,
                             char *field, size_t field_size)
{
    upload u = {.wanted = {input_name, strcmp(input_name ? input_name : "", "image") ? "image" : NULL}};
    struct MHD_PostProcessor *pp = MHD_create_post_processor(req->connection, 65536, on_field, &u);
    if (!pp) {
        http_reply_error(req, 400, "multipart/form-data body without a boundary in its Content-Type");
        return false;
    }
    enum MHD_Result fed = MHD_post_process(pp, req->body, req->body_len);
    enum MHD_Result done = MHD_destroy_post_processor(pp);
    int use = u.seen[0] ? 0 : u.seen[1] ? 1 : -1;
    bool ok = false;
    if (u.out_of_memory) {
        http_reply_error(req, 503, "out of memory reading the upload");
    } else if (fed != MHD_YES || (done != MHD_YES && use < 0)) {
        http_reply_error(req, 400, "malformed multipart/form-data body (boundary or part headers)");
    } else if (use < 0) {
        http_reply_error(req, 400, "the upload has no field '%s'%s (fields sent: %s): send the image as "
                         "-F image=@FILE", u.wanted[0] ? u.wanted[0] : "image", u.wanted[1] ? " or 'image'" : "",
                         u.others[0] ? u.others : "none");
    } else if (u.found[use].parts > 1) {
        http_reply_error(req, 400, "the upload has %d fields '%s': send one image per request (several as a V2 "
                         "BYTES input)", u.found[use].parts, u.found[use].name);
    } else if (u.found[use].size == 0) {
        http_reply_error(req, 400, "upload '%s': empty (no image bytes)", u.found[use].name);
    } else {
        *data = u.found[use].data;
        *size = u.found[use].size;
        u.found[use].data = NULL;
        snprintf(field, field_size, "upload '%s'", u.found[use].name);
        ok = true;
    }
    free(u.found[0].data);
    free(u.found[1].data);
    return ok;
}

bool image_request_base64(http_request *req, const char *text, size_t length, const char *where,
                          uint8_t **data, size_t *size)
{
    char err[512];
    if (!image_base64_decode(text, length, data, size, err, sizeof(err))) {
        http_reply_error(req, 400, "%s: %s", where, err);
        return false;
    }
    return true;
}

int image_request_query_top_k(http_request *req)
{
    const char *text = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "top_k");
    if (!text)
        return 0;
    char *end;
    long k = strtol(text, &end, 10);
    if (end == text || *end || k < 1 || k > IMAGE_TOP_K_MAX) {
        http_reply_error(req, 400, "top_k must be an integer from 1 to %d (got '%s')", IMAGE_TOP_K_MAX, text);
        return -1;
    }
    return (int)k;
}

json_t *image_request_top_k(http_request *req, const model_version *m, ifd_value *const *outputs, size_t row,
                            size_t k)
{
    image_class_score *scores = calloc(k ? k : 1, sizeof(*scores));
    if (!scores) {
        http_reply_error(req, 503, "out of memory");
        return NULL;
    }
    char err[512];
    size_t found = image_top_k(m->model, (const ifd_value *const *)outputs, row, m->labels, k, scores, err,
                               sizeof(err));
    if (found == 0) {
        free(scores);
        http_reply_error(req, 400, "model '%s': no top-k: %s", m->name, err);
        return NULL;
    }
    /* the one JSON shape of top-k answers, shared with `inferd predict --image` */
    json_t *list = image_scores_json(scores, found);
    free(scores);
    return list;
}

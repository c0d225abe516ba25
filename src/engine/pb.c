/*
 * pb.c — ONNX protobuf messages to and from engine values: TensorProto
 * (typed fields, raw_data, external data), SequenceProto and MapProto, and
 * the nesting-depth guard run before protobuf-c sees untrusted bytes.
 *
 * Every count read from a message is checked against the byte size its dims
 * imply before anything is allocated or copied, so a model or request file
 * can never make the engine allocate more than its own dims describe (and
 * never past IFD_MAX_TENSOR_BYTES).
 */
#include "pb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- nesting guard ------------------------------------------------------- */

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* protobuf-c decodes nested messages recursively without a depth limit, so a
 * crafted file nesting graphs inside attributes thousands deep would exhaust
 * the stack. Walk the wire format first, following only the fields the
 * descriptor says are messages, and refuse anything deeper than max_depth. */
static bool depth_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                     const uint8_t *end, int depth, int max_depth)
{
    if (depth > max_depth)
        return false;
    while (p < end) {
        uint64_t key, len;
        if (!read_varint(&p, end, &key))
            return true; /* malformed: protobuf-c will refuse it */
        switch (key & 7) {
        case 0:
            if (!read_varint(&p, end, &len))
                return true;
            break;
        case 1:
            if (end - p < 8)
                return true;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return true;
            p += 4;
            break;
        case 2: {
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p))
                return true;
            const ProtobufCFieldDescriptor *field =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
                    : NULL;
            if (field && field->type == PROTOBUF_C_TYPE_MESSAGE &&
                !depth_ok(field->descriptor, p, p + len, depth + 1, max_depth))
                return false;
            p += len;
            break;
        }
        default:
            return true;
        }
    }
    return true;
}

void *pb_unpack(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                const char *what, ifd_error *err)
{
    if (!depth_ok(desc, buf, (const uint8_t *)buf + len, 0, PB_MAX_DEPTH)) {
        set_error(err, "%s: messages nested deeper than %d levels", what, PB_MAX_DEPTH);
        return NULL;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, buf);
    if (!msg)
        set_error(err, "%s: not a valid %s protobuf message", what, desc->short_name);
    return msg;
}

/* ---- raw_data by reference ----------------------------------------------- *
 * protobuf-c copies every bytes field it unpacks, so unpacking a ModelProto
 * would hold all of a model's weights a second time next to the file's own
 * bytes. pb_unpack_model first rewrites the message without them: the
 * raw_data of every TensorProto, at any depth, becomes a 16-byte reference
 * (offset and length in the original bytes, little-endian), and protobuf-c
 * unpacks that small copy. The decoder then reads each weight straight from
 * the original bytes: in place when they are a mapped file, else copied once.
 * The rewrite walks the wire format by the descriptors, as depth_ok does, and
 * refuses what it cannot walk (protobuf-c would refuse it too). */

#define RAW_REF_BYTES 16
#define TENSOR_RAW_DATA_FIELD 9 /* onnx.proto: TensorProto.raw_data */

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

typedef struct strip_buf {
    uint8_t *data;
    size_t len, cap;
    bool oom;
} strip_buf;

static bool strip_put(strip_buf *b, const void *p, size_t n)
{
    if (b->oom)
        return false;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return false;
            }
            cap *= 2;
        }
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->oom = true;
            return false;
        }
        b->data = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static size_t encode_varint(uint64_t v, uint8_t out[10])
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

typedef enum strip_result { STRIP_OK, STRIP_MALFORMED, STRIP_TOO_DEEP, STRIP_NO_MEMORY } strip_result;

/* Copy the message in [p, end) of type desc into b, raw_data replaced by
 * references relative to base. */
static strip_result strip_message(const ProtobufCMessageDescriptor *desc, const uint8_t *base,
                                  const uint8_t *p, const uint8_t *end, int depth, strip_buf *b)
{
    if (depth > PB_MAX_DEPTH)
        return STRIP_TOO_DEEP;
    bool is_tensor = desc == &onnx__tensor_proto__descriptor;
    while (p < end) {
        const uint8_t *field_start = p;
        uint64_t key, len;
        if (!read_varint(&p, end, &key))
            return STRIP_MALFORMED;
        const uint8_t *key_end = p;
        switch (key & 7) {
        case 0:
            if (!read_varint(&p, end, &len))
                return STRIP_MALFORMED;
            break;
        case 1:
            if (end - p < 8)
                return STRIP_MALFORMED;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return STRIP_MALFORMED;
            p += 4;
            break;
        case 2: {
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p))
                return STRIP_MALFORMED;
            const ProtobufCFieldDescriptor *field =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
                    : NULL;
            if (is_tensor && key >> 3 == TENSOR_RAW_DATA_FIELD) {
                uint8_t ref[1 + 1 + RAW_REF_BYTES];
                uint64_t offset = (uint64_t)(p - base);
                ref[0] = (uint8_t)(TENSOR_RAW_DATA_FIELD << 3 | 2);
                ref[1] = RAW_REF_BYTES;
                for (int i = 0; i < 8; i++) {
                    ref[2 + i] = (uint8_t)(offset >> (8 * i));
                    ref[10 + i] = (uint8_t)(len >> (8 * i));
                }
                if (!strip_put(b, ref, sizeof(ref)))
                    return STRIP_NO_MEMORY;
                p += len;
                continue;
            }
            if (field && field->type == PROTOBUF_C_TYPE_MESSAGE) {
                /* the nested message shrinks: write it, then its new length
                 * in front of it (at most 5 bytes below 32 GiB) */
                uint8_t tmp[10];
                if (!strip_put(b, field_start, (size_t)(key_end - field_start)))
                    return STRIP_NO_MEMORY;
                size_t at = b->len;
                uint8_t reserve[5] = {0};
                if (!strip_put(b, reserve, sizeof(reserve)))
                    return STRIP_NO_MEMORY;
                strip_result r = strip_message(field->descriptor, base, p, p + len, depth + 1, b);
                if (r != STRIP_OK)
                    return r;
                size_t body = b->len - at - sizeof(reserve);
                size_t n = encode_varint(body, tmp);
                if (n > sizeof(reserve))
                    return STRIP_MALFORMED; /* 32 GiB of message: past any limit */
                memmove(b->data + at + n, b->data + at + sizeof(reserve), body);
                memcpy(b->data + at, tmp, n);
                b->len = at + n + body;
                p += len;
                continue;
            }
            p += len;
            break;
        }
        default:
            return STRIP_MALFORMED; /* groups: not in onnx.proto, not in protobuf-c */
        }
        if (!strip_put(b, field_start, (size_t)(p - field_start)))
            return STRIP_NO_MEMORY;
    }
    return STRIP_OK;
}

Onnx__ModelProto *pb_unpack_model(const void *buf, size_t len, ifd_error *err)
{
    strip_buf b = {0};
    strip_result r =
        strip_message(&onnx__model_proto__descriptor, buf, buf, (const uint8_t *)buf + len, 0, &b);
    Onnx__ModelProto *mp = NULL;
    if (r == STRIP_OK)
        mp = pb_unpack(&onnx__model_proto__descriptor, b.data ? b.data : (const uint8_t *)"",
                       b.len, "model", err);
    else if (r == STRIP_TOO_DEEP)
        set_error(err, "model: messages nested deeper than %d levels", PB_MAX_DEPTH);
    else if (r == STRIP_NO_MEMORY)
        set_error(err, "model: out of memory");
    else
        set_error(err, "model: not a valid ModelProto protobuf message");
    free(b.data);
    return mp;
}

/* ---- external data ------------------------------------------------------- */

/* Open `location` under `base_dir` so that the result can only be a regular
 * file inside that folder: no absolute path, no "..", no symlink anywhere on
 * the way, no hard link (the classes of CVE-2022-25882, CVE-2024-27318 and
 * CVE-2026-27489/34446/34447). openat2's RESOLVE_BENEATH enforces it in the
 * kernel at open time, so there is no check-then-open race. */
static int open_beneath(const char *base_dir, const char *location, const char *name,
                        ifd_error *err)
{
    if (location[0] == '\0' || location[0] == '/') {
        set_error(err, "tensor '%s': external data location '%s' must be a relative path", name,
                  location);
        return -1;
    }
    for (const char *c = location; *c; c++) {
        if (*c == '\\') {
            set_error(err, "tensor '%s': external data location '%s' contains a backslash",
                      name, location);
            return -1;
        }
    }
    const char *seg = location;
    while (*seg) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            set_error(err, "tensor '%s': external data location '%s' escapes the model folder",
                      name, location);
            return -1;
        }
        seg += n + (slash ? 1 : 0);
    }
    int dir = open(base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        set_error(err, "tensor '%s': cannot open model folder '%s': %s", name, base_dir,
                  strerror(errno));
        return -1;
    }
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever (a model naming one hung the loader); it is refused
     * below as not a regular file, and reads of regular files ignore it. */
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, dir, location, &how, sizeof(how));
    int saved = errno;
    close(dir);
    if (fd < 0) {
        if (saved == ELOOP || saved == EXDEV)
            set_error(err,
                      "tensor '%s': external data location '%s' goes through a symlink or "
                      "escapes the model folder",
                      name, location);
        else
            set_error(err, "tensor '%s': cannot open external data '%s': %s", name, location,
                      strerror(saved));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_error(err, "tensor '%s': external data '%s' is not a regular file", name, location);
        close(fd);
        return -1;
    }
    if (st.st_nlink != 1) {
        set_error(err, "tensor '%s': external data '%s' is a hard link (refused)", name,
                  location);
        close(fd);
        return -1;
    }
    return fd;
}

static bool parse_u64(const char *text, uint64_t *out)
{
    char *end;
    if (!text || !*text || *text == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Allocates t (dtype, rank, dims: `bytes` bytes) only once the file is known
 * to hold that many bytes past the offset, so a reference to a short file
 * cannot make the engine allocate what the shape claims. */
static ifd_status read_external(const Onnx__TensorProto *tp, const char *base_dir,
                                ifd_tensor *t, ifd_dtype dtype, int rank, const int64_t *dims,
                                size_t bytes, const char *name, ifd_error *err)
{
    const char *location = NULL;
    uint64_t offset = 0, length = bytes;
    bool has_length = false;
    if (!base_dir) {
        set_error(err, "tensor '%s': external data is not allowed for a model loaded from memory",
                  name);
        return IFD_ERR_INVALID_MODEL;
    }
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const char *key = tp->external_data[i]->key ? tp->external_data[i]->key : "";
        const char *val = tp->external_data[i]->value ? tp->external_data[i]->value : "";
        if (strcmp(key, "location") == 0) {
            location = val;
        } else if (strcmp(key, "offset") == 0) {
            if (!parse_u64(val, &offset)) {
                set_error(err, "tensor '%s': external data offset '%s' is not a number", name, val);
                return IFD_ERR_INVALID_MODEL;
            }
        } else if (strcmp(key, "length") == 0) {
            if (!parse_u64(val, &length)) {
                set_error(err, "tensor '%s': external data length '%s' is not a number", name, val);
                return IFD_ERR_INVALID_MODEL;
            }
            has_length = true;
        }
    }
    if (!location) {
        set_error(err, "tensor '%s': external data has no location", name);
        return IFD_ERR_INVALID_MODEL;
    }
    if (has_length && length != bytes) {
        set_error(err, "tensor '%s': external data length %llu does not match its shape (%zu bytes)",
                  name, (unsigned long long)length, bytes);
        return IFD_ERR_INVALID_MODEL;
    }
    int fd = open_beneath(base_dir, location, name, err);
    if (fd < 0)
        return IFD_ERR_INVALID_MODEL;
    struct stat st;
    ifd_status status = IFD_OK;
    if (fstat(fd, &st) != 0 || offset > (uint64_t)st.st_size ||
        bytes > (uint64_t)st.st_size - offset) {
        set_error(err, "tensor '%s': external data '%s' is shorter than offset %llu + %zu bytes",
                  name, location, (unsigned long long)offset, bytes);
        status = IFD_ERR_INVALID_MODEL;
    } else if ((status = tensor_alloc(t, dtype, rank, dims, name, err)) == IFD_OK) {
        size_t done = 0;
        while (done < bytes) {
            ssize_t n = pread(fd, (char *)t->data + done, bytes - done, (off_t)(offset + done));
            if (n <= 0) {
                set_error(err, "tensor '%s': reading external data '%s': %s", name, location,
                          n < 0 ? strerror(errno) : "unexpected end of file");
                status = IFD_ERR_IO;
                break;
            }
            done += (size_t)n;
        }
        if (status != IFD_OK)
            tensor_release(t);
    }
    close(fd);
    return status;
}

/* ---- TensorProto --------------------------------------------------------- */

static bool dtype_known(int32_t t) { return t >= IFD_FLOAT && t <= IFD_INT4; }

/* int4/uint4 come packed two per byte, low nibble first; in memory each
 * element takes a byte (sign-extended for int4). */
static void unpack_int4(ifd_dtype dtype, const uint8_t *packed, size_t count, uint8_t *out)
{
    for (size_t i = 0; i < count; i++) {
        uint8_t nibble = (uint8_t)((packed[i / 2] >> (4 * (i & 1))) & 0x0f);
        out[i] = dtype == IFD_INT4 && (nibble & 0x08) ? (uint8_t)(nibble | 0xf0) : nibble;
    }
}

/* The raw_data of tp: its own bytes, or, in a message from pb_unpack_model,
 * the bytes of src its (offset, length) reference names. false on a
 * reference that is not one (cannot come from pb_unpack_model). */
static bool raw_bytes(const Onnx__TensorProto *tp, const pb_source *src, const uint8_t **data,
                      size_t *len)
{
    if (!src || !src->bytes) {
        *data = tp->raw_data.data;
        *len = tp->raw_data.len;
        return true;
    }
    if (tp->raw_data.len != RAW_REF_BYTES)
        return false;
    uint64_t offset = read_le64(tp->raw_data.data), length = read_le64(tp->raw_data.data + 8);
    if (offset > src->len || length > src->len - offset)
        return false;
    *data = src->bytes + offset;
    *len = (size_t)length;
    return true;
}

/* The copy is what the model keeps: from a mapping, the file's pages go back
 * to the page cache as each 1 MiB is copied, so that the load never holds a
 * weight (not even the largest) twice. */
static void copy_raw(void *dst, const uint8_t *raw, size_t bytes, bool mapped)
{
    const uintptr_t step = (uintptr_t)1 << 20;
    size_t done = 0;
    while (done < bytes) {
        uintptr_t at = (uintptr_t)(raw + done);
        size_t n = (size_t)(((at / step) + 1) * step - at); /* to the next 1 MiB boundary */
        if (n > bytes - done)
            n = bytes - done;
        memcpy((char *)dst + done, raw + done, n);
        if (mapped)
            pb_release_pages(raw + done, n);
        done += n;
    }
    if (mapped)
        pb_release_pages(raw, bytes);
}

/* A raw_data of at least this many bytes that is aligned for its element
 * type is read in place from a mapped file; smaller ones are copied, so that
 * a few bytes of shape constants do not keep a page of the file resident. */
#define MAP_MIN_BYTES 4096

/* An unaligned raw_data of at least this many bytes in a mapped file is
 * copied when a node first reads it (pb_tensor_load's `deferred`). */
#define DEFER_MIN_BYTES ((size_t)256 << 10)

static ifd_status decode_tensor(const Onnx__TensorProto *tp, const pb_source *src,
                                ifd_tensor *t, const uint8_t **deferred, ifd_error *err)
{
    const char *name = tp->name ? tp->name : "";
    const char *base_dir = src ? src->base_dir : NULL;
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    int64_t dims[IFD_MAX_RANK];
    size_t bytes;
    char shape[128];

    memset(t, 0, sizeof(*t));
    if (!dtype_known(tp->data_type)) {
        set_error(err, "tensor '%s': unknown data type %d", name, (int)tp->data_type);
        return IFD_ERR_UNSUPPORTED;
    }
    ifd_dtype dtype = (ifd_dtype)tp->data_type;
    if (tp->n_dims > IFD_MAX_RANK) {
        set_error(err, "tensor '%s': rank %zu exceeds the engine's maximum of %d", name,
                  tp->n_dims, IFD_MAX_RANK);
        return IFD_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; i < tp->n_dims; i++)
        dims[i] = tp->dims[i];
    int rank = (int)tp->n_dims;
    if (!shape_bytes(dtype, rank, dims, &bytes)) {
        set_error(err, "tensor '%s': shape %s is negative, overflows or is too large", name,
                  shape_to_string(rank, dims, shape, sizeof(shape)));
        return IFD_ERR_INVALID_MODEL;
    }
    int64_t count64;
    shape_count(rank, dims, &count64);
    size_t count = (size_t)count64;
    ifd_status st;

    /* Every branch below checks that the message (or the external file)
     * really holds the bytes the dims claim *before* allocating: dims cost a
     * few bytes, so allocating first would let a 20-byte file make the engine
     * calloc up to IFD_MAX_TENSOR_BYTES (found by fuzz_value_decode). */
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (dtype == IFD_STRING) {
            set_error(err, "tensor '%s': string tensors cannot use external data", name);
            return IFD_ERR_INVALID_MODEL;
        }
        if (dtype_is_int4(dtype)) {
            set_error(err, "tensor '%s': %s tensors in external data are not supported", name,
                      ifd_dtype_name(dtype));
            return IFD_ERR_UNSUPPORTED;
        }
        return read_external(tp, base_dir, t, dtype, rank, dims, bytes, name, err);
    }
    if (tp->has_raw_data && !raw_bytes(tp, src, &raw, &raw_len)) {
        set_error(err, "tensor '%s': raw_data reference is out of the model's bytes", name);
        return IFD_ERR_INVALID_MODEL;
    }
    if (tp->has_raw_data && dtype_is_int4(dtype)) {
        size_t packed = (count + 1) / 2;
        if (raw_len != packed) {
            set_error(err, "tensor '%s': raw_data has %zu bytes, shape %s of %s needs %zu (two "
                      "values a byte)", name, raw_len,
                      shape_to_string(rank, dims, shape, sizeof(shape)), ifd_dtype_name(dtype),
                      packed);
            return IFD_ERR_INVALID_MODEL;
        }
        st = tensor_alloc(t, dtype, rank, dims, name, err);
        if (st == IFD_OK)
            unpack_int4(dtype, raw, count, t->data);
        if (src && src->mapped)
            pb_release_pages(raw, raw_len);
        return st;
    }
    if (tp->has_raw_data && dtype != IFD_STRING) {
        if (raw_len != bytes) {
            set_error(err, "tensor '%s': raw_data has %zu bytes, shape %s of %s needs %zu", name,
                      raw_len, shape_to_string(rank, dims, shape, sizeof(shape)),
                      ifd_dtype_name(dtype), bytes);
            return IFD_ERR_INVALID_MODEL;
        }
        /* In place: a view of the read-only mapping the model keeps (never
         * written: operators pack constants into their own memory). */
        if (src && src->mapped && bytes >= MAP_MIN_BYTES &&
            (uintptr_t)raw % ifd_dtype_size(dtype) == 0) {
            t->dtype = dtype;
            tensor_set_shape(t, rank, dims);
            t->data = (void *)raw;
            return IFD_OK;
        }
        if (deferred && src && src->mapped && bytes >= DEFER_MIN_BYTES) {
            t->dtype = dtype;
            tensor_set_shape(t, rank, dims);
            *deferred = raw; /* checked: raw_len == bytes, inside the mapping */
            return IFD_OK;
        }
        st = tensor_alloc(t, dtype, rank, dims, name, err);
        if (st == IFD_OK && bytes)
            copy_raw(t->data, raw, bytes, src && src->mapped);
        return st;
    }

    size_t have = 0, per_element = 1;
    switch (dtype) {
    case IFD_FLOAT: have = tp->n_float_data; break;
    case IFD_COMPLEX64: have = tp->n_float_data; per_element = 2; break;
    case IFD_DOUBLE: have = tp->n_double_data; break;
    case IFD_COMPLEX128: have = tp->n_double_data; per_element = 2; break;
    case IFD_INT64: have = tp->n_int64_data; break;
    case IFD_UINT32: case IFD_UINT64: have = tp->n_uint64_data; break;
    case IFD_STRING: have = tp->n_string_data; break;
    case IFD_UINT4: case IFD_INT4: have = tp->n_int32_data * 2; break;
    default: have = tp->n_int32_data; break;
    }
    /* int32_data holds int4 values packed two per entry: an odd count
     * leaves the last high nibble unused */
    if (dtype_is_int4(dtype) && have == count + 1 && count % 2 == 1)
        have = count;
    if (have != count * per_element) {
        set_error(err, "tensor '%s': holds %zu values, shape %s needs %zu", name, have,
                  shape_to_string(rank, dims, shape, sizeof(shape)), count * per_element);
        return IFD_ERR_INVALID_MODEL;
    }
    st = tensor_alloc(t, dtype, rank, dims, name, err);
    if (st != IFD_OK)
        return st;
    for (size_t i = 0; i < count; i++) {
        switch (dtype) {
        case IFD_FLOAT: ((float *)t->data)[i] = tp->float_data[i]; break;
        case IFD_COMPLEX64:
            ((float *)t->data)[2 * i] = tp->float_data[2 * i];
            ((float *)t->data)[2 * i + 1] = tp->float_data[2 * i + 1];
            break;
        case IFD_DOUBLE: ((double *)t->data)[i] = tp->double_data[i]; break;
        case IFD_COMPLEX128:
            ((double *)t->data)[2 * i] = tp->double_data[2 * i];
            ((double *)t->data)[2 * i + 1] = tp->double_data[2 * i + 1];
            break;
        case IFD_INT64: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
        case IFD_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i]; break;
        case IFD_UINT64: ((uint64_t *)t->data)[i] = tp->uint64_data[i]; break;
        case IFD_INT32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
        case IFD_INT16: ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i]; break;
        case IFD_INT8: ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i]; break;
        case IFD_UINT16: case IFD_FLOAT16: case IFD_BFLOAT16:
            ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
            break;
        case IFD_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
        case IFD_FLOAT8E4M3FN: case IFD_FLOAT8E4M3FNUZ: case IFD_FLOAT8E5M2:
        case IFD_FLOAT8E5M2FNUZ:
            ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i];
            break;
        case IFD_UINT4: case IFD_INT4: {
            uint8_t byte = (uint8_t)tp->int32_data[i / 2];
            uint8_t nibble = (uint8_t)((byte >> (4 * (i & 1))) & 0x0f);
            ((uint8_t *)t->data)[i] =
                dtype == IFD_INT4 && (nibble & 0x08) ? (uint8_t)(nibble | 0xf0) : nibble;
            break;
        }
        case IFD_BOOL: ((uint8_t *)t->data)[i] = tp->int32_data[i] != 0; break;
        case IFD_STRING:
            if (!string_set(&((ifd_string *)t->data)[i], (const char *)tp->string_data[i].data,
                            tp->string_data[i].len)) {
                set_error(err, "tensor '%s': out of memory", name);
                tensor_release(t);
                return IFD_ERR_NO_MEMORY;
            }
            break;
        default: break;
        }
    }
    return IFD_OK;
}

ifd_status pb_tensor_materialize(ifd_tensor *t, const uint8_t *raw, const char *name,
                                 ifd_error *err)
{
    int64_t dims[IFD_MAX_RANK];
    for (int i = 0; i < t->rank; i++)
        dims[i] = t->dims[i];
    size_t bytes;
    if (!shape_bytes(t->dtype, t->rank, dims, &bytes)) {
        set_error(err, "tensor '%s': shape overflows", name); /* checked when deferred */
        return IFD_ERR_INVALID_MODEL;
    }
    ifd_status st = tensor_alloc(t, t->dtype, t->rank, dims, name, err);
    if (st == IFD_OK && bytes)
        copy_raw(t->data, raw, bytes, true);
    return st;
}

void pb_release_pages(const void *data, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !data)
        return;
    uintptr_t start = ((uintptr_t)data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)data + len) & ~((uintptr_t)page - 1);
    /* only whole pages inside the range: the ones around it may hold
     * another tensor's bytes (harmless to drop, they fault back in, but
     * pointless) */
    if (end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}

ifd_status pb_tensor_load(Onnx__TensorProto *tp, const pb_source *src, ifd_tensor *t,
                          const uint8_t **deferred, ifd_error *err)
{
    if (deferred)
        *deferred = NULL;
    ifd_status st = decode_tensor(tp, src, t, deferred, err);
    /* the typed fields (float_data, int64_data, ...) of an older exporter's
     * file were copied by the decoder: the message need not hold them too */
    free(tp->float_data);
    free(tp->int32_data);
    free(tp->int64_data);
    free(tp->double_data);
    free(tp->uint64_data);
    tp->float_data = NULL;
    tp->int32_data = NULL;
    tp->int64_data = NULL;
    tp->double_data = NULL;
    tp->uint64_data = NULL;
    tp->n_float_data = tp->n_int32_data = tp->n_int64_data = 0;
    tp->n_double_data = tp->n_uint64_data = 0;
    return st;
}

ifd_status pb_tensor_to_ifd(const void *proto, const char *base_dir, ifd_tensor *t,
                            ifd_error *err)
{
    pb_source src = {.base_dir = base_dir};
    return decode_tensor(proto, &src, t, NULL, err);
}

/* ---- values -------------------------------------------------------------- */

static ifd_status decode_sequence(const Onnx__SequenceProto *sp, ifd_value *out, int depth,
                                  ifd_error *err);

static ifd_status decode_map(const Onnx__MapProto *mp, ifd_value *out, ifd_error *err)
{
    ifd_status st;
    size_t n = mp->key_type == IFD_STRING ? mp->n_string_keys : mp->n_keys;
    int64_t dims[1] = {(int64_t)n};
    out->kind = IFD_VALUE_MAP;
    if (mp->key_type != IFD_STRING && mp->key_type != IFD_INT64 && mp->key_type != IFD_INT32) {
        set_error(err, "map: key type %d is not supported", (int)mp->key_type);
        return IFD_ERR_UNSUPPORTED;
    }
    st = tensor_alloc(&out->map_keys, mp->key_type == IFD_STRING ? IFD_STRING : IFD_INT64, 1,
                      dims, "map keys", err);
    if (st != IFD_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (mp->key_type == IFD_STRING) {
            if (!string_set(&((ifd_string *)out->map_keys.data)[i],
                            (const char *)mp->string_keys[i].data, mp->string_keys[i].len)) {
                set_error(err, "map: out of memory");
                return IFD_ERR_NO_MEMORY;
            }
        } else {
            ((int64_t *)out->map_keys.data)[i] = mp->keys[i];
        }
    }
    const Onnx__SequenceProto *vals = mp->values;
    size_t nv = vals ? vals->n_tensor_values : 0;
    if (nv != n) {
        set_error(err, "map: %zu keys but %zu tensor values", n, nv);
        return IFD_ERR_INVALID_ARGUMENT;
    }
    ifd_dtype vtype = IFD_FLOAT;
    for (size_t i = 0; i < n; i++) {
        ifd_tensor item;
        st = pb_tensor_to_ifd(vals->tensor_values[i], NULL, &item, err);
        if (st != IFD_OK)
            return st;
        if (i == 0) {
            vtype = item.dtype;
            st = tensor_alloc(&out->map_values, vtype, 1, dims, "map values", err);
        }
        if (st == IFD_OK && (item.dtype != vtype || ifd_tensor_count(&item) != 1)) {
            set_error(err, "map: value %zu is not a scalar %s", i, ifd_dtype_name(vtype));
            st = IFD_ERR_INVALID_ARGUMENT;
        }
        if (st == IFD_OK) {
            if (vtype == IFD_STRING)
                st = string_set(&((ifd_string *)out->map_values.data)[i],
                                ((ifd_string *)item.data)[0].data,
                                ((ifd_string *)item.data)[0].size)
                         ? IFD_OK
                         : IFD_ERR_NO_MEMORY;
            else
                memcpy((char *)out->map_values.data + i * ifd_dtype_size(vtype), item.data,
                       ifd_dtype_size(vtype));
        }
        tensor_release(&item);
        if (st != IFD_OK)
            return st;
    }
    if (n == 0)
        st = tensor_alloc(&out->map_values, IFD_FLOAT, 1, dims, "map values", err);
    return st;
}

static ifd_status decode_sequence(const Onnx__SequenceProto *sp, ifd_value *out, int depth,
                                  ifd_error *err)
{
    size_t n;
    out->kind = IFD_VALUE_SEQUENCE;
    if (depth > PB_MAX_DEPTH) {
        set_error(err, "sequence: nested too deeply");
        return IFD_ERR_INVALID_ARGUMENT;
    }
    switch (sp->elem_type) {
    case ONNX__SEQUENCE_PROTO__DATA_TYPE__TENSOR: n = sp->n_tensor_values; break;
    case ONNX__SEQUENCE_PROTO__DATA_TYPE__SEQUENCE: n = sp->n_sequence_values; break;
    case ONNX__SEQUENCE_PROTO__DATA_TYPE__MAP: n = sp->n_map_values; break;
    default:
        set_error(err, "sequence: element type %d is not supported", (int)sp->elem_type);
        return IFD_ERR_UNSUPPORTED;
    }
    if (n) {
        out->items = calloc(n, sizeof(*out->items));
        if (!out->items) {
            set_error(err, "sequence: out of memory");
            return IFD_ERR_NO_MEMORY;
        }
    }
    for (size_t i = 0; i < n; i++) {
        ifd_value *item = calloc(1, sizeof(*item));
        ifd_status st;
        if (!item) {
            set_error(err, "sequence: out of memory");
            return IFD_ERR_NO_MEMORY;
        }
        out->items[i] = item;
        out->length = i + 1;
        if (sp->elem_type == ONNX__SEQUENCE_PROTO__DATA_TYPE__TENSOR) {
            item->kind = IFD_VALUE_TENSOR;
            st = pb_tensor_to_ifd(sp->tensor_values[i], NULL, &item->tensor, err);
        } else if (sp->elem_type == ONNX__SEQUENCE_PROTO__DATA_TYPE__SEQUENCE) {
            st = decode_sequence(sp->sequence_values[i], item, depth + 1, err);
        } else {
            st = decode_map(sp->map_values[i], item, err);
        }
        if (st != IFD_OK)
            return st;
    }
    return IFD_OK;
}

/* An optional holds a tensor or a sequence of tensors, or nothing. */
static ifd_status decode_optional(const Onnx__OptionalProto *op, ifd_value *out, ifd_error *err)
{
    out->kind = IFD_VALUE_OPTIONAL;
    if (!op->tensor_value && !op->sequence_value)
        return IFD_OK;
    ifd_value *item = calloc(1, sizeof(*item));
    out->items = calloc(1, sizeof(*out->items));
    if (!item || !out->items) {
        free(item);
        set_error(err, "optional: out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    out->items[0] = item;
    out->length = 1;
    if (op->tensor_value) {
        item->kind = IFD_VALUE_TENSOR;
        return pb_tensor_to_ifd(op->tensor_value, NULL, &item->tensor, err);
    }
    return decode_sequence(op->sequence_value, item, 1, err);
}

ifd_status ifd_value_decode_pb(const void *buf, size_t len, const ifd_type_info *expected,
                               ifd_value **out, ifd_error *err)
{
    ifd_value_kind kind = expected ? expected->kind : IFD_VALUE_TENSOR;
    ifd_value *value = calloc(1, sizeof(*value));
    ifd_status st = IFD_OK;
    *out = NULL;
    if (!value) {
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    if (kind == IFD_VALUE_TENSOR) {
        Onnx__TensorProto *tp = pb_unpack(&onnx__tensor_proto__descriptor, buf, len, "tensor", err);
        if (!tp) {
            st = IFD_ERR_INVALID_ARGUMENT;
        } else {
            value->kind = IFD_VALUE_TENSOR;
            if (tp->has_data_location &&
                tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
                set_error(err, "tensor '%s': external data is not allowed in an input",
                          tp->name ? tp->name : "");
                st = IFD_ERR_INVALID_ARGUMENT;
            } else {
                st = pb_tensor_to_ifd(tp, NULL, &value->tensor, err);
            }
            protobuf_c_message_free_unpacked(&tp->base, NULL);
        }
    } else if (kind == IFD_VALUE_OPTIONAL) {
        Onnx__OptionalProto *op =
            pb_unpack(&onnx__optional_proto__descriptor, buf, len, "optional", err);
        if (!op) {
            st = IFD_ERR_INVALID_ARGUMENT;
        } else {
            st = decode_optional(op, value, err);
            protobuf_c_message_free_unpacked(&op->base, NULL);
        }
    } else if (kind == IFD_VALUE_SEQUENCE) {
        Onnx__SequenceProto *sp =
            pb_unpack(&onnx__sequence_proto__descriptor, buf, len, "sequence", err);
        if (!sp) {
            st = IFD_ERR_INVALID_ARGUMENT;
        } else {
            st = decode_sequence(sp, value, 0, err);
            protobuf_c_message_free_unpacked(&sp->base, NULL);
        }
    } else {
        Onnx__MapProto *mp = pb_unpack(&onnx__map_proto__descriptor, buf, len, "map", err);
        if (!mp) {
            st = IFD_ERR_INVALID_ARGUMENT;
        } else {
            st = decode_map(mp, value, err);
            protobuf_c_message_free_unpacked(&mp->base, NULL);
        }
    }
    if (st != IFD_OK) {
        if (st == IFD_ERR_INVALID_MODEL)
            st = IFD_ERR_INVALID_ARGUMENT;
        ifd_value_free(value);
        return st;
    }
    *out = value;
    return IFD_OK;
}

/* Encoding builds protobuf-c structs that borrow the value's memory, packs
 * them, then frees only the scaffolding. */
typedef struct encode_scratch {
    void **blocks;
    size_t n, cap;
} encode_scratch;

static void *scratch_alloc(encode_scratch *s, size_t bytes)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void **grown = realloc(s->blocks, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        s->blocks = grown;
        s->cap = cap;
    }
    void *block = calloc(1, bytes ? bytes : 1);
    if (block)
        s->blocks[s->n++] = block;
    return block;
}

static void scratch_free(encode_scratch *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->blocks[i]);
    free(s->blocks);
}

/* Fill a TensorProto that points into t's memory (no copies for numbers);
 * string elements get a ProtobufCBinaryData array from the scratch. */
static bool tensor_to_pb(const ifd_tensor *t, const char *name, Onnx__TensorProto *tp,
                         int64_t *dims_storage, struct encode_scratch *s)
{
    onnx__tensor_proto__init(tp);
    tp->name = (char *)name;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->n_dims = (size_t)t->rank;
    for (int i = 0; i < t->rank; i++)
        dims_storage[i] = t->dims[i];
    tp->dims = dims_storage;
    size_t count = (size_t)ifd_tensor_count(t);
    if (t->dtype == IFD_STRING) {
        const ifd_string *strings = t->data;
        tp->n_string_data = count;
        tp->string_data = count ? scratch_alloc(s, count * sizeof(ProtobufCBinaryData)) : NULL;
        if (count && !tp->string_data)
            return false;
        for (size_t i = 0; i < count; i++) {
            tp->string_data[i].data = (uint8_t *)strings[i].data;
            tp->string_data[i].len = strings[i].size;
        }
    } else if (dtype_is_int4(t->dtype)) {
        /* files hold int4 packed two per byte, low nibble first */
        uint8_t *packed = scratch_alloc(s, (count + 1) / 2 + 1);
        if (!packed)
            return false;
        memset(packed, 0, (count + 1) / 2 + 1);
        for (size_t i = 0; i < count; i++)
            packed[i / 2] |= (uint8_t)((((const uint8_t *)t->data)[i] & 0x0f) << (4 * (i & 1)));
        tp->has_raw_data = 1;
        tp->raw_data.data = packed;
        tp->raw_data.len = (count + 1) / 2;
    } else {
        tp->has_raw_data = 1;
        tp->raw_data.data = t->data;
        tp->raw_data.len = count * ifd_dtype_size(t->dtype);
    }
    return true;
}

static Onnx__TensorProto *build_tensor(encode_scratch *s, const ifd_tensor *t, const char *name)
{
    Onnx__TensorProto *tp = scratch_alloc(s, sizeof(*tp));
    int64_t *dims = scratch_alloc(s, sizeof(int64_t) * IFD_MAX_RANK);
    if (!tp || !dims || !tensor_to_pb(t, name, tp, dims, s))
        return NULL;
    return tp;
}

static Onnx__SequenceProto *build_sequence(encode_scratch *s, const ifd_value *v,
                                           const char *name, int depth);

static Onnx__MapProto *build_map(encode_scratch *s, const ifd_value *v, const char *name)
{
    Onnx__MapProto *mp = scratch_alloc(s, sizeof(*mp));
    Onnx__SequenceProto *vals = scratch_alloc(s, sizeof(*vals));
    size_t n = (size_t)ifd_tensor_count(&v->map_keys);
    if (!mp || !vals)
        return NULL;
    onnx__map_proto__init(mp);
    onnx__sequence_proto__init(vals);
    mp->name = (char *)name;
    mp->has_key_type = 1;
    mp->key_type = (int32_t)v->map_keys.dtype;
    if (v->map_keys.dtype == IFD_STRING) {
        mp->n_string_keys = n;
        mp->string_keys = scratch_alloc(s, n * sizeof(ProtobufCBinaryData));
        if (!mp->string_keys)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            mp->string_keys[i].data = (uint8_t *)((ifd_string *)v->map_keys.data)[i].data;
            mp->string_keys[i].len = ((ifd_string *)v->map_keys.data)[i].size;
        }
    } else {
        mp->n_keys = n;
        mp->keys = v->map_keys.data;
    }
    vals->has_elem_type = 1;
    vals->elem_type = ONNX__SEQUENCE_PROTO__DATA_TYPE__TENSOR;
    vals->n_tensor_values = n;
    vals->tensor_values = scratch_alloc(s, n * sizeof(*vals->tensor_values));
    if (!vals->tensor_values)
        return NULL;
    size_t esize = ifd_dtype_size(v->map_values.dtype);
    for (size_t i = 0; i < n; i++) {
        ifd_tensor scalar = tensor_view(&v->map_values);
        scalar.rank = 0;
        scalar.data = (char *)v->map_values.data + i * esize;
        vals->tensor_values[i] = build_tensor(s, &scalar, "");
        if (!vals->tensor_values[i])
            return NULL;
    }
    mp->values = vals;
    return mp;
}

static Onnx__SequenceProto *build_sequence(encode_scratch *s, const ifd_value *v,
                                           const char *name, int depth)
{
    Onnx__SequenceProto *sp = scratch_alloc(s, sizeof(*sp));
    if (!sp || depth > PB_MAX_DEPTH)
        return NULL;
    onnx__sequence_proto__init(sp);
    sp->name = (char *)name;
    sp->has_elem_type = 1;
    ifd_value_kind kind = v->length ? v->items[0]->kind : IFD_VALUE_TENSOR;
    void **slots = scratch_alloc(s, (v->length ? v->length : 1) * sizeof(void *));
    if (!slots)
        return NULL;
    for (size_t i = 0; i < v->length; i++) {
        const ifd_value *item = v->items[i];
        if (item->kind != kind)
            return NULL;
        if (kind == IFD_VALUE_TENSOR)
            slots[i] = build_tensor(s, &item->tensor, "");
        else if (kind == IFD_VALUE_MAP)
            slots[i] = build_map(s, item, "");
        else
            slots[i] = build_sequence(s, item, "", depth + 1);
        if (!slots[i])
            return NULL;
    }
    if (kind == IFD_VALUE_TENSOR) {
        sp->elem_type = ONNX__SEQUENCE_PROTO__DATA_TYPE__TENSOR;
        sp->n_tensor_values = v->length;
        sp->tensor_values = (Onnx__TensorProto **)slots;
    } else if (kind == IFD_VALUE_MAP) {
        sp->elem_type = ONNX__SEQUENCE_PROTO__DATA_TYPE__MAP;
        sp->n_map_values = v->length;
        sp->map_values = (Onnx__MapProto **)slots;
    } else {
        sp->elem_type = ONNX__SEQUENCE_PROTO__DATA_TYPE__SEQUENCE;
        sp->n_sequence_values = v->length;
        sp->sequence_values = (Onnx__SequenceProto **)slots;
    }
    return sp;
}

static Onnx__OptionalProto *build_optional(encode_scratch *s, const ifd_value *v, const char *name)
{
    Onnx__OptionalProto *op = scratch_alloc(s, sizeof(*op));
    if (!op)
        return NULL;
    onnx__optional_proto__init(op);
    op->name = (char *)name;
    op->has_elem_type = 1;
    op->elem_type = ONNX__OPTIONAL_PROTO__DATA_TYPE__UNDEFINED;
    if (v->length == 0)
        return op;
    const ifd_value *item = v->items[0];
    if (item->kind == IFD_VALUE_TENSOR) {
        op->elem_type = ONNX__OPTIONAL_PROTO__DATA_TYPE__TENSOR;
        op->tensor_value = build_tensor(s, &item->tensor, "");
        return op->tensor_value ? op : NULL;
    }
    if (item->kind == IFD_VALUE_SEQUENCE) {
        op->elem_type = ONNX__OPTIONAL_PROTO__DATA_TYPE__SEQUENCE;
        op->sequence_value = build_sequence(s, item, "", 1);
        return op->sequence_value ? op : NULL;
    }
    return NULL;
}

ifd_status ifd_value_encode_pb(const ifd_value *value, const char *name, void **buf,
                               size_t *len, ifd_error *err)
{
    encode_scratch s = {0};
    ProtobufCMessage *msg = NULL;
    *buf = NULL;
    *len = 0;
    if (value->kind == IFD_VALUE_TENSOR)
        msg = (ProtobufCMessage *)build_tensor(&s, &value->tensor, name);
    else if (value->kind == IFD_VALUE_OPTIONAL)
        msg = (ProtobufCMessage *)build_optional(&s, value, name);
    else if (value->kind == IFD_VALUE_MAP)
        msg = (ProtobufCMessage *)build_map(&s, value, name);
    else
        msg = (ProtobufCMessage *)build_sequence(&s, value, name, 0);
    if (!msg) {
        scratch_free(&s);
        set_error(err, "output '%s': cannot encode (out of memory or mixed sequence)", name);
        return IFD_ERR_NO_MEMORY;
    }
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *out = malloc(size ? size : 1);
    if (!out) {
        scratch_free(&s);
        set_error(err, "output '%s': out of memory", name);
        return IFD_ERR_NO_MEMORY;
    }
    protobuf_c_message_pack(msg, out);
    scratch_free(&s);
    *buf = out;
    *len = size;
    return IFD_OK;
}

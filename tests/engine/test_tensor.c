/*
 * test_tensor.c — sizes, overflow guards, float16/bfloat16 conversion and
 * broadcasting helpers of src/engine/tensor.c.
 */
#include <stdlib.h>

#include "tensor.h"
#include "test.h"

static void test_shape_count_rejects_negative_and_overflowing_dims(void)
{
    int64_t count;
    int64_t ok[3] = {2, 3, 4};
    CHECK(shape_count(3, ok, &count));
    CHECK_EQ_INT(count, 24);
    int64_t negative[2] = {2, -1};
    CHECK(!shape_count(2, negative, &count));
    int64_t overflow[3] = {1ll << 40, 1ll << 40, 2};
    CHECK(!shape_count(3, overflow, &count));
    int64_t zero[3] = {1ll << 62, 0, 1ll << 62};
    CHECK(shape_count(3, zero, &count));
    CHECK_EQ_INT(count, 0);
}

static void test_shape_bytes_caps_allocation_size(void)
{
    size_t bytes;
    int64_t big[1] = {(int64_t)(IFD_MAX_TENSOR_BYTES / 4) + 1};
    CHECK(!shape_bytes(IFD_FLOAT, 1, big, &bytes));
    int64_t fits[1] = {1000};
    CHECK(shape_bytes(IFD_DOUBLE, 1, fits, &bytes));
    CHECK_EQ_INT(bytes, 8000);
    CHECK(!shape_bytes(IFD_UNDEFINED, 1, fits, &bytes));
}

static void test_half_round_trips_and_rounds_to_nearest_even(void)
{
    CHECK_EQ_INT(float_to_half(1.0f), 0x3c00);
    CHECK_EQ_INT(float_to_half(-2.0f), 0xc000);
    CHECK_EQ_INT(float_to_half(65504.0f), 0x7bff);
    CHECK_EQ_INT(float_to_half(1e6f), 0x7c00);              /* overflow to infinity */
    CHECK_EQ_INT(float_to_half(5.960464477539063e-08f), 0x0001); /* smallest subnormal */
    CHECK_EQ_INT(float_to_half(1.0f + 1.0f / 2048), 0x3c00);  /* tie rounds to even */
    CHECK_EQ_INT(float_to_half(1.0f + 3.0f / 2048), 0x3c02);
    CHECK(isnan(half_to_float(float_to_half(NAN))));
    for (uint32_t h = 0; h < 0x7c00; h++)
        if (float_to_half(half_to_float((uint16_t)h)) != h) {
            CHECK_EQ_INT(float_to_half(half_to_float((uint16_t)h)), h);
            break;
        }
}

static void test_bfloat16_rounds_to_nearest_even(void)
{
    CHECK_EQ_INT(float_to_bfloat16(1.0f), 0x3f80);
    CHECK_NEAR(bfloat16_to_float(float_to_bfloat16(3.14159f)), 3.140625, 0);
    CHECK(isnan(bfloat16_to_float(float_to_bfloat16(NAN))));
}

static void test_broadcast_follows_numpy(void)
{
    int rank;
    int64_t dims[IFD_MAX_RANK];
    int64_t a[3] = {2, 1, 4}, b[2] = {3, 1};
    CHECK(broadcast_shapes(3, a, 2, b, &rank, dims));
    CHECK_EQ_INT(rank, 3);
    CHECK_EQ_INT(dims[0], 2);
    CHECK_EQ_INT(dims[1], 3);
    CHECK_EQ_INT(dims[2], 4);
    int64_t strides[3];
    broadcast_strides(3, dims, 2, b, strides);
    CHECK_EQ_INT(strides[0], 0);
    CHECK_EQ_INT(strides[1], 1);
    CHECK_EQ_INT(strides[2], 0);
    int64_t c[1] = {5};
    CHECK(!broadcast_shapes(3, a, 1, c, &rank, dims));
}

static void test_tensor_copy_is_deep_for_strings(void)
{
    ifd_tensor src = {0}, dst = {0};
    int64_t dims[1] = {2};
    ifd_error err;
    CHECK(tensor_alloc(&src, IFD_STRING, 1, dims, "test", &err) == IFD_OK);
    CHECK(string_set(&((ifd_string *)src.data)[0], "abc", 3));
    CHECK(tensor_copy(&dst, &src, &err) == IFD_OK);
    ((ifd_string *)src.data)[0].data[0] = 'x';
    CHECK(strcmp(((ifd_string *)dst.data)[0].data, "abc") == 0);
    CHECK_EQ_INT(((ifd_string *)dst.data)[1].size, 0);
    tensor_release(&src);
    tensor_release(&dst);
}

static void test_tensor_alloc_names_what_failed(void)
{
    ifd_tensor t = {0};
    ifd_error err;
    int64_t dims[2] = {1ll << 40, 1ll << 40};
    CHECK(tensor_alloc(&t, IFD_FLOAT, 2, dims, "weights", &err) == IFD_ERR_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(err.message, "weights");
    CHECK(t.data == NULL);
}

static void test_set_double_saturates_instead_of_undefined_behaviour(void)
{
    ifd_tensor t = {0};
    ifd_error err;
    int64_t dims[1] = {3};
    CHECK(tensor_alloc(&t, IFD_INT32, 1, dims, "test", &err) == IFD_OK);
    tensor_set_double(&t, 0, NAN);
    tensor_set_double(&t, 1, 1e30);
    tensor_set_double(&t, 2, -1e30);
    CHECK_EQ_INT(((int32_t *)t.data)[0], 0);
    CHECK_EQ_INT(((int32_t *)t.data)[1], INT32_MAX);
    CHECK_EQ_INT(((int32_t *)t.data)[2], INT32_MIN);
    tensor_release(&t);
    CHECK(tensor_alloc(&t, IFD_UINT8, 1, dims, "test", &err) == IFD_OK);
    tensor_set_double(&t, 0, -5.0);
    tensor_set_double(&t, 1, 300.0);
    tensor_set_double(&t, 2, 7.9);
    CHECK_EQ_INT(((uint8_t *)t.data)[0], 0);
    CHECK_EQ_INT(((uint8_t *)t.data)[1], 255);
    CHECK_EQ_INT(((uint8_t *)t.data)[2], 7);
    tensor_release(&t);
}

int main(void)
{
    RUN(test_shape_count_rejects_negative_and_overflowing_dims);
    RUN(test_shape_bytes_caps_allocation_size);
    RUN(test_half_round_trips_and_rounds_to_nearest_even);
    RUN(test_bfloat16_rounds_to_nearest_even);
    RUN(test_broadcast_follows_numpy);
    RUN(test_tensor_copy_is_deep_for_strings);
    RUN(test_tensor_alloc_names_what_failed);
    RUN(test_set_double_saturates_instead_of_undefined_behaviour);
    TEST_MAIN_END();
}

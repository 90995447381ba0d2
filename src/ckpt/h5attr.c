/* h5attr.c — scalar HDF5 attributes (h5attr.h). */
#include "ckpt/h5attr.h"

#include <stdlib.h>
#include <string.h>

static dl_status attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value,
                            const char *path) {
    DL_REQUIRE(name != NULL && path != NULL && value != NULL, DL_ERR_INVALID, "dl_h5_attr_write: NULL argument");
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t ok = attr >= 0 ? H5Awrite(attr, mem_type, value) : -1;
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    DL_REQUIRE(ok >= 0, DL_ERR_IO, "%s: cannot write attribute %s", path, name);
    return DL_OK;
}

dl_status dl_h5_attr_write_i64(hid_t obj, const char *name, int64_t v, const char *path) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}

dl_status dl_h5_attr_write_u32(hid_t obj, const char *name, uint32_t v, const char *path) {
    return attr_write(obj, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &v, path);
}

dl_status dl_h5_attr_write_f64(hid_t obj, const char *name, double v, const char *path) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}

dl_status dl_h5_attr_write_str(hid_t obj, const char *name, const char *text, const char *path) {
    DL_REQUIRE(text != NULL, DL_ERR_INVALID, "dl_h5_attr_write_str: NULL text");
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(text) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    dl_status s = attr_write(obj, name, type, type, text, path);
    H5Tclose(type);
    return s;
}

static dl_status attr_missing(const char *name, const char *path, const char *expected) {
    if (expected)
        return DL_FAIL(DL_ERR_FORMAT, "%s: attribute %s is missing (not %s?)", path, name, expected);
    return DL_FAIL(DL_ERR_FORMAT, "%s: attribute %s is missing", path, name);
}

dl_status dl_h5_attr_read(hid_t obj, const char *name, hid_t mem_type, void *out, const char *path,
                          const char *expected) {
    DL_REQUIRE(name != NULL && path != NULL && out != NULL, DL_ERR_INVALID, "dl_h5_attr_read: NULL argument");
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0)
        return attr_missing(name, path, expected);
    herr_t ok = H5Aread(attr, mem_type, out);
    H5Aclose(attr);
    DL_REQUIRE(ok >= 0, DL_ERR_FORMAT, "%s: attribute %s cannot be read as the expected type", path, name);
    return DL_OK;
}

dl_status dl_h5_attr_read_str(hid_t obj, const char *name, char **out, const char *path, const char *expected) {
    DL_REQUIRE(name != NULL && path != NULL && out != NULL, DL_ERR_INVALID, "dl_h5_attr_read_str: NULL argument");
    *out = NULL;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0)
        return attr_missing(name, path, expected);
    hid_t type = H5Aget_type(attr);
    dl_status s = DL_OK;
    if (type < 0 || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: attribute %s is not a fixed-length string", path, name);
    } else {
        size_t size = H5Tget_size(type);
        char *text = calloc(size + 1, 1);
        if (!text)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes for attribute %s", size + 1, name);
        else if (H5Aread(attr, type, text) < 0)
            s = DL_FAIL(DL_ERR_FORMAT, "%s: attribute %s cannot be read", path, name);
        if (s == DL_OK)
            *out = text;
        else
            free(text);
    }
    if (type >= 0)
        H5Tclose(type);
    H5Aclose(attr);
    return s;
}

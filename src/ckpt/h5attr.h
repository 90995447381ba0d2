/* h5attr.h — scalar HDF5 attributes (64-bit integers, doubles, fixed-length strings) written and read with one
 * error line naming the file and the attribute: the checkpoint and DPO's reference file both use them. */
#ifndef DL_CKPT_H5ATTR_H
#define DL_CKPT_H5ATTR_H

#include <hdf5.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each creates attribute `name` on obj (a file, group or dataset); `path` names the file in the error. */
dl_status dl_h5_attr_write_i64(hid_t obj, const char *name, int64_t v, const char *path);
dl_status dl_h5_attr_write_u32(hid_t obj, const char *name, uint32_t v, const char *path);
dl_status dl_h5_attr_write_f64(hid_t obj, const char *name, double v, const char *path);
dl_status dl_h5_attr_write_str(hid_t obj, const char *name, const char *text, const char *path);

/* Reads scalar attribute `name` of obj as mem_type into *out. `expected` says what the file should be ("a dealer
 * checkpoint"), for the message when the attribute is missing; NULL says nothing more. */
dl_status dl_h5_attr_read(hid_t obj, const char *name, hid_t mem_type, void *out, const char *path,
                          const char *expected);
/* Reads a fixed-length string attribute into *out (malloc'd, the caller frees). */
dl_status dl_h5_attr_read_str(hid_t obj, const char *name, char **out, const char *path, const char *expected);

#ifdef __cplusplus
}
#endif

#endif

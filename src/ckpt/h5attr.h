/* h5attr.h — scalar HDF5 attributes (64-bit integers, doubles, fixed-length strings) written with one error line
 * naming the file and the attribute: the checkpoint and DPO's reference file both write them. */
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

#ifdef __cplusplus
}
#endif

#endif

/* checkpoint.c — writing and reading HDF5 checkpoints (see checkpoint.h).
 *
 * Rank 0 writes the whole file with the serial HDF5 API: in data-parallel training every rank holds the same
 * parameters and optimizer state, so one writer is both simplest and fastest. The cursors, which differ per rank,
 * are gathered to rank 0 first. HDF5's own error printing is silenced; every failure becomes one dl_status line
 * naming the file and the object. */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"
#include "data/record.h"

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static dl_status make_dirs(const char *path) {
    char buffer[4096];
    size_t len = strlen(path);
    DL_REQUIRE(len > 0 && len < sizeof buffer, DL_ERR_INVALID, "bad directory path '%s'", path);
    memcpy(buffer, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buffer[i] == '/' || buffer[i] == '\0') {
            char saved = buffer[i];
            buffer[i] = '\0';
            if (mkdir(buffer, 0755) != 0 && errno != EEXIST)
                return DL_FAIL(DL_ERR_IO, "cannot create directory %s: %s", buffer, strerror(errno));
            buffer[i] = saved;
        }
    }
    return DL_OK;
}

/* ---- writing --------------------------------------------------------------------------------------------------- */

static dl_status attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value,
                            const char *path) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t ok = attr >= 0 ? H5Awrite(attr, mem_type, value) : -1;
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    DL_REQUIRE(ok >= 0, DL_ERR_IO, "%s: cannot write attribute %s", path, name);
    return DL_OK;
}

static dl_status attr_write_i64(hid_t obj, const char *name, int64_t v, const char *path) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}

static dl_status attr_write_f64(hid_t obj, const char *name, double v, const char *path) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}

static dl_status attr_write_str(hid_t obj, const char *name, const char *text, const char *path) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(text) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    dl_status s = attr_write(obj, name, type, type, text, path);
    H5Tclose(type);
    return s;
}

/* A dataset of `numel` elements of `shape` with its crc32c attribute (CRC of the little-endian bytes). */
static dl_status write_dataset(hid_t group, const char *name, int ndim, const hsize_t *dims, hid_t file_type,
                               hid_t mem_type, const void *data, size_t bytes, const char *path) {
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t dset = H5Dcreate2(group, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t ok = dset >= 0 && (bytes == 0 || H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    dl_status s = DL_OK;
    if (!ok || dset < 0)
        s = DL_FAIL(DL_ERR_IO, "%s: cannot write dataset %s", path, name);
    if (s == DL_OK) {
        uint32_t crc = dl_crc32c(0, data, bytes);
        s = attr_write(dset, "crc32c", H5T_STD_U32LE, H5T_NATIVE_UINT32, &crc, path);
    }
    if (dset >= 0)
        H5Dclose(dset);
    H5Sclose(space);
    return s;
}

static dl_status write_tensor_group(hid_t file, const char *group_path, const dl_tensor_table *params,
                                    const float *data, const char *path) {
    hid_t group = H5Gcreate2(file, group_path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    DL_REQUIRE(group >= 0, DL_ERR_IO, "%s: cannot create group %s", path, group_path);
    dl_status s = DL_OK;
    for (size_t i = 0; i < params->count && s == DL_OK; i++) {
        const dl_tensor *t = dl_tensor_table_at(params, i);
        hsize_t dims[DL_TENSOR_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            dims[d] = t->shape[d];
        s = write_dataset(group, t->name, t->ndim, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data + t->offset,
                          t->numel * sizeof(float), path);
    }
    H5Gclose(group);
    return s;
}

static dl_status write_file(const char *tmp_path, const char *path, const dl_ckpt_meta *meta,
                            const dl_ckpt_tensors *t, const uint8_t *cursors, const int *lengths, int world) {
    quiet_hdf5();
    hid_t file = H5Fcreate(tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    DL_REQUIRE(file >= 0, DL_ERR_IO, "cannot create checkpoint %s (disk full or no permission?)", tmp_path);
    dl_status s = DL_OK;
#define TRY(expr)                  \
    if (s == DL_OK)                \
    s = (expr)
    TRY(attr_write_i64(file, "format_version", DL_CKPT_FORMAT_VERSION, path));
    TRY(attr_write_str(file, "dealer_version", DEALER_VERSION " (git " DEALER_GIT_REV ")", path));
    TRY(attr_write_i64(file, "step", meta->step, path));
    TRY(attr_write_i64(file, "epoch", meta->epoch, path));
    TRY(attr_write_f64(file, "tokens_seen", meta->tokens_seen, path));
    TRY(attr_write_f64(file, "samples_seen", meta->samples_seen, path));
    TRY(attr_write_i64(file, "optimizer_step", meta->optimizer_step, path));
    TRY(attr_write_i64(file, "seed", meta->seed, path));
    TRY(attr_write_i64(file, "world_size", meta->world_size, path));
    TRY(attr_write_i64(file, "zero_stage", meta->zero_stage, path));
    TRY(attr_write_str(file, "model_kind", meta->model_kind, path));
    TRY(attr_write_str(file, "config", meta->config_yaml ? meta->config_yaml : "", path));
    TRY(write_tensor_group(file, "/model", t->params, t->params_data, path));
    if (s == DL_OK && t->num_states > 0) {
        hid_t group = H5Gcreate2(file, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (group < 0)
            s = DL_FAIL(DL_ERR_IO, "%s: cannot create group /optimizer", path);
        else
            H5Gclose(group);
        for (int k = 0; k < t->num_states && s == DL_OK; k++) {
            char name[128];
            snprintf(name, sizeof name, "/optimizer/%s", t->state_names[k]);
            s = write_tensor_group(file, name, t->params, t->states_data[k], path);
        }
    }
    if (s == DL_OK) {
        hid_t group = H5Gcreate2(file, "/data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (group < 0) {
            s = DL_FAIL(DL_ERR_IO, "%s: cannot create group /data", path);
        } else {
            size_t total = 0;
            for (int r = 0; r < world; r++)
                total += (size_t)lengths[r];
            hsize_t dims_c[1] = {total}, dims_l[1] = {(hsize_t)world};
            s = write_dataset(group, "cursors", 1, dims_c, H5T_STD_U8LE, H5T_NATIVE_UINT8, cursors, total, path);
            if (s == DL_OK)
                s = write_dataset(group, "cursor_lengths", 1, dims_l, H5T_STD_I32LE, H5T_NATIVE_INT32, lengths,
                                  (size_t)world * sizeof(int), path);
            H5Gclose(group);
        }
    }
#undef TRY
    if (H5Fclose(file) < 0 && s == DL_OK)
        s = DL_FAIL(DL_ERR_IO, "%s: closing the file failed (disk full?)", tmp_path);
    if (s == DL_OK) {
        int fd = open(tmp_path, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0)
            s = DL_FAIL(DL_ERR_IO, "cannot fsync %s: %s", tmp_path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (s == DL_OK)
        s = dl_rename_durable(tmp_path, path);
    if (s != DL_OK)
        unlink(tmp_path);
    return s;
}

static int parse_step_name(const char *name, int64_t *step) {
    long long v;
    int used = 0;
    if (sscanf(name, "step_%8lld.h5%n", &v, &used) == 1 && used > 0 && name[used] == '\0') {
        *step = v;
        return 1;
    }
    return 0;
}

/* Deletes complete checkpoints older than the newest `keep`, except multiples of keep_every. */
static void prune(const char *dir, int keep, int keep_every) {
    if (keep <= 0)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    int64_t steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096) {
        int64_t step;
        if (parse_step_name(e->d_name, &step))
            steps[n++] = step;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (newer < keep || (keep_every > 0 && steps[i] % keep_every == 0))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, (long long)steps[i]);
        if (unlink(path) != 0)
            DL_WARN("could not delete old checkpoint %s: %s", path, strerror(errno));
    }
}

dl_status dl_ckpt_save(dl_world *world, const char *run_dir, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                       const uint8_t *cursor, size_t cursor_len, int keep, int keep_every, char *path_out,
                       size_t path_cap) {
    DL_REQUIRE(world && run_dir && meta && t, DL_ERR_INVALID, "dl_ckpt_save: NULL argument");
    int lengths_stack[64];
    int *lengths = world->size <= 64 ? lengths_stack : malloc((size_t)world->size * sizeof(int));
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "cannot allocate cursor lengths");
    void *cursors = NULL;
    dl_status s = dl_comm_gather_bytes(world, cursor, (int)cursor_len, 0, &cursors, lengths, "checkpoint cursors");
    char dir[4096], path[4200], tmp[4300];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, (long long)meta->step);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (s == DL_OK && world->rank == 0) {
        s = make_dirs(dir);
        if (s == DL_OK)
            s = write_file(tmp, path, meta, t, cursors, lengths, world->size);
        if (s == DL_OK) {
            char latest[4200], line[64];
            snprintf(latest, sizeof latest, "%s/latest", dir);
            int n = snprintf(line, sizeof line, "step_%08lld.h5\n", (long long)meta->step);
            s = dl_write_file_atomic(latest, line, (size_t)n);
        }
        if (s == DL_OK) {
            prune(dir, keep, keep_every);
            if (path_out)
                snprintf(path_out, path_cap, "%s", path);
        }
    }
    free(cursors);
    if (lengths != lengths_stack)
        free(lengths);
    /* Every rank learns whether rank 0 managed, so none carries on believing a checkpoint exists. */
    int64_t failed = s != DL_OK;
    dl_status agree = dl_comm_allreduce_max_i64(world, &failed, 1, "checkpoint status");
    if (s != DL_OK)
        return s;
    DL_CHECK(agree);
    if (failed)
        return DL_FAIL(DL_ERR_IO, "rank 0 could not write checkpoint %s (see its message)", path);
    return DL_OK;
}

/* ---- reading --------------------------------------------------------------------------------------------------- */

dl_status dl_ckpt_latest(const char *run_dir, char *path, size_t cap, int *found) {
    DL_REQUIRE(run_dir && path && found, DL_ERR_INVALID, "dl_ckpt_latest: NULL argument");
    *found = 0;
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/ckpt/latest", run_dir);
    FILE *f = fopen(latest, "r");
    if (!f)
        return errno == ENOENT ? DL_OK : DL_FAIL(DL_ERR_IO, "cannot read %s: %s", latest, strerror(errno));
    char name[256] = "";
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    int64_t step;
    if (!ok || !parse_step_name(name, &step)) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: expected a line 'step_NNNNNNNN.h5', got '%s'", latest, name);
        dl_error_hint("delete it to start afresh, or write the name of a checkpoint in it");
        return s;
    }
    snprintf(path, cap, "%s/ckpt/%s", run_dir, name);
    if (access(path, R_OK) != 0) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s names %s, which cannot be read: %s", latest, path, strerror(errno));
        dl_error_hint("point latest at an existing step file, or use train.resume=never");
        return s;
    }
    *found = 1;
    return DL_OK;
}

static dl_status open_checkpoint(const char *path, hid_t *file) {
    quiet_hdf5();
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: not a readable HDF5 checkpoint (truncated or damaged?)", path);
        dl_error_hint("resume from an earlier step file in the same directory");
        return s;
    }
    return DL_OK;
}

static dl_status attr_read(hid_t file, const char *name, hid_t mem_type, void *out, const char *path) {
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    DL_REQUIRE(attr >= 0, DL_ERR_FORMAT, "%s: attribute /%s is missing", path, name);
    herr_t ok = H5Aread(attr, mem_type, out);
    H5Aclose(attr);
    DL_REQUIRE(ok >= 0, DL_ERR_FORMAT, "%s: attribute /%s cannot be read as the expected type", path, name);
    return DL_OK;
}

static dl_status attr_read_str(hid_t file, const char *name, char **out, const char *path) {
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    DL_REQUIRE(attr >= 0, DL_ERR_FORMAT, "%s: attribute /%s is missing", path, name);
    hid_t type = H5Aget_type(attr);
    size_t size = H5Tget_size(type);
    char *text = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type) ? calloc(size + 1, 1) : NULL;
    herr_t ok = text ? H5Aread(attr, type, text) : -1;
    H5Tclose(type);
    H5Aclose(attr);
    if (ok < 0) {
        free(text);
        return DL_FAIL(DL_ERR_FORMAT, "%s: attribute /%s is not a fixed-length string", path, name);
    }
    *out = text;
    return DL_OK;
}

dl_status dl_ckpt_read_meta(const char *path, dl_ckpt_meta *meta) {
    DL_REQUIRE(path && meta, DL_ERR_INVALID, "dl_ckpt_read_meta: NULL argument");
    memset(meta, 0, sizeof *meta);
    hid_t file;
    DL_CHECK(open_checkpoint(path, &file));
    int64_t version = 0, world = 0, zero = 0;
    char *kind = NULL;
    dl_status s = attr_read(file, "format_version", H5T_NATIVE_INT64, &version, path);
    if (s == DL_OK && version != DL_CKPT_FORMAT_VERSION)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: checkpoint format version %lld, this dealer reads version %d", path,
                    (long long)version, DL_CKPT_FORMAT_VERSION);
#define READ(name, type, dst) \
    if (s == DL_OK)           \
    s = attr_read(file, name, type, dst, path)
    READ("step", H5T_NATIVE_INT64, &meta->step);
    READ("epoch", H5T_NATIVE_INT64, &meta->epoch);
    READ("tokens_seen", H5T_NATIVE_DOUBLE, &meta->tokens_seen);
    READ("samples_seen", H5T_NATIVE_DOUBLE, &meta->samples_seen);
    READ("optimizer_step", H5T_NATIVE_INT64, &meta->optimizer_step);
    READ("seed", H5T_NATIVE_INT64, &meta->seed);
    READ("world_size", H5T_NATIVE_INT64, &world);
    READ("zero_stage", H5T_NATIVE_INT64, &zero);
#undef READ
    if (s == DL_OK)
        s = attr_read_str(file, "model_kind", &kind, path);
    if (s == DL_OK)
        s = attr_read_str(file, "config", &meta->config_yaml, path);
    if (s == DL_OK) {
        snprintf(meta->model_kind, sizeof meta->model_kind, "%s", kind);
        meta->world_size = (int)world;
        meta->zero_stage = (int)zero;
    }
    free(kind);
    H5Fclose(file);
    if (s != DL_OK) {
        free(meta->config_yaml);
        meta->config_yaml = NULL;
    }
    return s;
}

/* Reads dataset `name` (expected shape: ndim/dims; NULL dims: any 1-D) into out, checking its CRC. */
static dl_status read_dataset(hid_t file, const char *name, int ndim, const size_t *dims, hid_t mem_type,
                              void *out, size_t bytes, const char *path) {
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    DL_REQUIRE(dset >= 0, DL_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    hid_t space = H5Dget_space(dset);
    int file_ndim = H5Sget_simple_extent_ndims(space);
    hsize_t file_dims[8] = {0};
    if (file_ndim >= 0 && file_ndim <= 8)
        H5Sget_simple_extent_dims(space, file_dims, NULL);
    H5Sclose(space);
    int same = file_ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = file_dims[d] == dims[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        size_t a = 0, b = 0;
        for (int d = 0; d < ndim; d++)
            a += (size_t)snprintf(want + a, sizeof want - a, "%s%zu", d ? ", " : "", dims[d]);
        for (int d = 0; d < file_ndim && d < 8; d++)
            b += (size_t)snprintf(got + b, sizeof got - b, "%s%llu", d ? ", " : "", (unsigned long long)file_dims[d]);
        H5Dclose(dset);
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s has shape [%s] but the model needs [%s]", path, name, got,
                              want);
        dl_error_hint("the checkpoint is of another model shape: check model.* against its config (dealer ckpt show)");
        return s;
    }
    herr_t ok = bytes == 0 || H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    uint32_t stored = 0;
    hid_t attr = ok ? H5Aopen(dset, "crc32c", H5P_DEFAULT) : -1;
    herr_t have_crc = attr >= 0 && H5Aread(attr, H5T_NATIVE_UINT32, &stored) >= 0;
    if (attr >= 0)
        H5Aclose(attr);
    H5Dclose(dset);
    DL_REQUIRE(ok, DL_ERR_FORMAT, "%s: tensor %s cannot be read (damaged file?)", path, name);
    DL_REQUIRE(have_crc, DL_ERR_FORMAT, "%s: tensor %s has no crc32c attribute", path, name);
    uint32_t computed = dl_crc32c(0, out, bytes);
    if (computed != stored) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s: CRC mismatch (stored 0x%08x, computed 0x%08x)", path,
                              name, stored, computed);
        dl_error_hint("the file is damaged; resume from an earlier step file");
        return s;
    }
    return DL_OK;
}

static dl_status read_tensor_group(hid_t file, const char *group, const dl_tensor_table *params, float *data,
                                   const char *path) {
    for (size_t i = 0; i < params->count; i++) {
        const dl_tensor *t = dl_tensor_table_at(params, i);
        char name[512];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        DL_CHECK(read_dataset(file, name, t->ndim, t->shape, H5T_NATIVE_FLOAT, data + t->offset,
                              t->numel * sizeof(float), path));
    }
    return DL_OK;
}

dl_status dl_ckpt_load(const char *path, const dl_ckpt_tensors *t, int rank, int world_size, uint8_t **cursor,
                       size_t *cursor_len) {
    DL_REQUIRE(path && t && cursor && cursor_len, DL_ERR_INVALID, "dl_ckpt_load: NULL argument");
    *cursor = NULL;
    *cursor_len = 0;
    hid_t file;
    DL_CHECK(open_checkpoint(path, &file));
    dl_status s = read_tensor_group(file, "/model", t->params, t->params_data, path);
    for (int k = 0; k < t->num_states && s == DL_OK; k++) {
        char group[128];
        snprintf(group, sizeof group, "/optimizer/%s", t->state_names[k]);
        s = read_tensor_group(file, group, t->params, t->states_data[k], path);
    }
    int64_t saved_world = 0;
    if (s == DL_OK)
        s = attr_read(file, "world_size", H5T_NATIVE_INT64, &saved_world, path);
    if (s == DL_OK && saved_world == world_size && world_size > 0 && rank < world_size) {
        int *lengths = malloc((size_t)world_size * sizeof(int));
        size_t dims[1] = {(size_t)world_size};
        s = lengths ? read_dataset(file, "/data/cursor_lengths", 1, dims, H5T_NATIVE_INT32, lengths,
                                   (size_t)world_size * sizeof(int), path)
                    : DL_FAIL(DL_ERR_NOMEM, "cannot allocate cursor lengths");
        size_t total = 0, offset = 0;
        for (int r = 0; s == DL_OK && r < world_size; r++) {
            if (lengths[r] < 0) {
                s = DL_FAIL(DL_ERR_FORMAT, "%s: negative cursor length for rank %d", path, r);
                break;
            }
            if (r < rank)
                offset += (size_t)lengths[r];
            total += (size_t)lengths[r];
        }
        uint8_t *all = s == DL_OK ? malloc(total ? total : 1) : NULL;
        size_t cdims[1] = {total};
        if (s == DL_OK && !all)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu cursor bytes", total);
        if (s == DL_OK)
            s = read_dataset(file, "/data/cursors", 1, cdims, H5T_NATIVE_UINT8, all, total, path);
        if (s == DL_OK) {
            *cursor_len = (size_t)lengths[rank];
            *cursor = malloc(*cursor_len ? *cursor_len : 1);
            if (!*cursor)
                s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate a cursor");
            else
                memcpy(*cursor, all + offset, *cursor_len);
        }
        free(all);
        free(lengths);
    }
    H5Fclose(file);
    return s;
}

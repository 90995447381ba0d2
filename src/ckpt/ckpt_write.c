/* ckpt_write.c — dl_ckpt_write: one checkpoint file written by all ranks together, atomically.
 *
 * Writing is all-collective through parallel HDF5 (the MPI-IO driver), even on one rank, so there is one code path:
 * every rank creates the same groups, datasets and attributes (HDF5 requires metadata calls to match on all ranks,
 * so everything that shapes the file — the meta, the config text, the cursor lengths, the slices — is first
 * broadcast from rank 0), and each dataset is written with one collective H5Dwrite in which every rank selects the
 * elements it is responsible for (the plan, ckpt_plan.c; one dataset, ckpt_write_dataset.c). Row-split tables go
 * through bounded slabs instead (ckpt_slabs.c). The CRCs are folded from every rank's share (ckpt_crc.c). The file
 * is a temporary until it is complete, flushed and renamed; after every phase the ranks agree on its outcome
 * (ckpt_agree.c). */
#include "ckpt/ckpt_internal.h"

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/h5attr.h"
#include "core/fault.h"
#include "core/fs.h"
#include "core/log.h"

/* DEALER_TEST_KILL_CKPT=PHASE:STEP: rank 0 dies here (tests of crash safety). */
void dl_ckpt_maybe_kill(const dl_world *w, const char *phase, int64_t step) {
    const char *spec = getenv("DEALER_TEST_KILL_CKPT");
    if (!spec || w->rank != 0)
        return;
    const char *colon = strchr(spec, ':');
    if (!colon || (size_t)(colon - spec) != strlen(phase) || strncmp(spec, phase, strlen(phase)) != 0)
        return;
    if (strtoll(colon + 1, NULL, 10) == step)
        raise(SIGKILL);
}

static hid_t create_group(hid_t file, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* Closes a file that failed on some rank, on every rank together (they agreed on the failure first), so that HDF5
 * keeps nothing open: HDF5 flushes its metadata at close, and on a full disk that flush fails again and leaves the
 * file open inside the library, which then crashes in MPI_Finalize trying once more. So the file is first cut to
 * nothing (MPI_File_set_size, collective), which gives the space of its data back and leaves room for the few
 * metadata bytes of the close; the file itself is deleted afterwards. Returns whether HDF5 let go of it. */
static int close_failed(dl_world *w, hid_t file, const char *tmp) {
    char what[4500];
    snprintf(what, sizeof what, "closing the failed checkpoint %s", tmp);
    dl_comm_guard_begin(w, what, tmp);
    void *handle = NULL;
    hid_t fapl = H5Fget_access_plist(file);
    if (fapl >= 0 && H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle)
        MPI_File_set_size(*(MPI_File *)handle, 0);
    if (fapl >= 0)
        H5Pclose(fapl);
    herr_t closed = H5Fclose(file);
    dl_comm_guard_end(w);
    return closed >= 0 || H5Iis_valid(file) <= 0;
}

/* The collective part: the file, its attributes, groups and datasets, then the CRCs. After each phase the ranks
 * agree on its outcome (an all-reduce under the watchdog), so a rank that failed never leaves the others inside one
 * of HDF5's collective calls; those calls themselves run under a guard (dl_comm_guard_begin), in case one fails
 * inside HDF5. Raw data is written with independent transfers (compressed datasets excepted: parallel HDF5 writes
 * those only collectively). On failure every rank closes what it opened and the file is closed together. */
static dl_status write_contents(dl_world *w, const char *tmp, const char *path, const dl_ckpt_meta_wire *m,
                                const char *config, const dl_ckpt_tensors *t, dl_ckpt_plan *p,
                                const dl_ckpt_options *o) {
    const int compress = o->compress;
    char what[4600];
#define GUARD(...)                                         \
    do {                                                   \
        snprintf(what, sizeof what, __VA_ARGS__);          \
        dl_comm_guard_begin(w, what, tmp);                 \
    } while (0)
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, w->comm, MPI_INFO_NULL);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    GUARD("creating checkpoint %s", tmp);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    dl_comm_guard_end(w);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    dl_status s = DL_OK;
    if (file < 0) {
        s = DL_FAIL(DL_ERR_IO, "rank %d: cannot create checkpoint %s", w->rank, tmp);
        dl_error_hint("check that the run directory is writable and the disk has room");
    }
    s = dl_ckpt_agree(w, s, "checkpoint create");
    if (s != DL_OK) {
        if (file >= 0) /* created here but not on another rank: this close cannot be collective, so it is guarded */
            close_failed(w, file, tmp);
        return s;
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, compress ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
    s = dl_ckpt_meta_write(file, m, config, path);
    char groups[2 + 16 + 1][192];
    size_t ngroups = 0;
    snprintf(groups[ngroups++], sizeof groups[0], "/model");
    if (t->num_states > 0)
        snprintf(groups[ngroups++], sizeof groups[0], "/optimizer");
    for (int k = 0; k < t->num_states; k++)
        snprintf(groups[ngroups++], sizeof groups[0], "/optimizer/%s", t->state_names[k]);
    snprintf(groups[ngroups++], sizeof groups[0], "/data");
    GUARD("writing the metadata of checkpoint %s", tmp);
    for (size_t g = 0; g < ngroups && s == DL_OK; g++) {
        hid_t gid = create_group(file, groups[g]);
        if (gid < 0)
            s = DL_FAIL(DL_ERR_IO, "%s: cannot create group %s", path, groups[g]);
        else
            H5Gclose(gid);
    }
    dl_comm_guard_end(w);
    hid_t *dsets = malloc((p->count ? p->count : 1) * sizeof *dsets);
    uint32_t *raw = calloc(p->count ? p->count : 1, sizeof *raw);
    if (s == DL_OK && (!dsets || !raw))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu dataset handles", p->count);
    for (size_t i = 0; dsets && i < p->count; i++)
        dsets[i] = -1;
    s = dl_ckpt_agree(w, s, "checkpoint metadata");
    dl_ckpt_slab_route route;
    memset(&route, 0, sizeof route);
    int routed = 0;
    for (size_t i = 0; i < p->count && s == DL_OK; i++) {
        const dl_ckpt_planned *d = &p->items[i];
        GUARD("writing %s of checkpoint %s", d->name, tmp);
        if (d->split) {
            dl_status deferred = DL_OK; /* a layout or write failure: the rounds go on, all ranks agree after */
            if (!routed) {
                s = dl_ckpt_slab_route_init(&route, w->size);
                routed = s == DL_OK;
            }
            if (s == DL_OK)
                s = dl_ckpt_create_dataset(file, d, compress, &dsets[i], path);
            if (s == DL_OK)
                s = dl_ckpt_write_split(w, dsets[i], dxpl, compress, d, o->slab_bytes, &route, &raw[i], &deferred,
                                        path);
            if (s == DL_OK)
                s = deferred;
        } else {
            s = dl_ckpt_write_planned(file, dxpl, compress, d, compress, &dsets[i], path);
            if (s == DL_OK)
                raw[i] = dl_ckpt_planned_raw_crc(d);
        }
        dl_comm_guard_end(w);
        s = dl_ckpt_agree(w, s, "checkpoint write");
    }
    dl_ckpt_slab_route_free(&route);
    if (s == DL_OK)
        dl_ckpt_maybe_kill(w, "data", m->step);
    /* The CRCs: XOR of the ranks' raw registers, finished on rank 0, broadcast, written by all. */
    uint32_t *all = NULL;
    if (s == DL_OK) {
        size_t bytes = p->count * sizeof(uint32_t);
        all = malloc(bytes * (size_t)w->size + 4);
        s = all ? dl_ckpt_allgather_bytes(w, raw, bytes, all, "checkpoint CRCs")
                : DL_FAIL(DL_ERR_NOMEM, "cannot allocate CRC table");
    }
    if (s == DL_OK)
        GUARD("writing the CRCs of checkpoint %s", tmp);
    for (size_t i = 0; i < p->count && s == DL_OK; i++) {
        uint32_t x = 0;
        for (int r = 0; r < w->size; r++)
            x ^= all[(size_t)r * p->count + i];
        uint32_t crc = dl_ckpt_raw_finish(x, p->items[i].numel * dl_ckpt_dtype_size(p->items[i].dtype));
        s = dl_h5_attr_write_u32(dsets[i], "crc32c", crc, path);
    }
    dl_comm_guard_end(w);
    free(all);
    for (size_t i = 0; dsets && i < p->count; i++)
        if (dsets[i] >= 0)
            H5Dclose(dsets[i]);
    free(dsets);
    free(raw);
    H5Pclose(dxpl);
    s = dl_ckpt_agree(w, s, "checkpoint CRCs");
    if (s == DL_OK && !o->skip_fsync) { /* H5Fflush syncs the file (MPI_File_sync); the close writes it all the same */
        GUARD("flushing checkpoint %s", tmp);
        int injected = dl_fault_hit(DL_FAULT_FSYNC); /* the flush is collective: it runs all the same */
        if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0 || injected)
            s = dl_ckpt_write_failure(path, injected, "flushing the file failed");
        dl_comm_guard_end(w);
        s = dl_ckpt_agree(w, s, "checkpoint flush");
    }
    if (s != DL_OK) {
        if (!close_failed(w, file, tmp))
            DL_WARN("rank %d: HDF5 could not close the failed checkpoint %s", w->rank, tmp);
        return s;
    }
    GUARD("closing checkpoint %s", tmp);
    int still_open = 0;
    if (H5Fclose(file) < 0) {
        s = dl_ckpt_write_failure(path, 0, "closing the file failed");
        still_open = H5Iis_valid(file) > 0;
    }
    dl_comm_guard_end(w);
    dl_status agreed = dl_ckpt_agree(w, s, "checkpoint close");
    /* A close that failed on one rank only: every rank is past its own close, so only that rank cuts and closes
     * again (MPI_File_set_size is collective: it would wait for the others; the guard bounds it). */
    if (still_open && !close_failed(w, file, tmp))
        DL_WARN("rank %d: HDF5 could not close the failed checkpoint %s", w->rank, tmp);
    return agreed;
#undef GUARD
}

/* Rank 0 names the temporary file (unique to this writer, next to `path`) and every rank learns the name; rank 0
 * also refuses to start when the file system has less room than the checkpoint needs (uncompressed: a compressed
 * file's size is not known before it is written). */
static dl_status prepare_tmp(dl_world *w, const char *path, const dl_ckpt_plan *p, size_t config_len, int compress,
                             char *tmp, size_t cap) {
    dl_status s = DL_OK;
    memset(tmp, 0, cap);
    if (w->rank == 0) {
        uint64_t need = 64 * 1024 + config_len;
        for (size_t i = 0; i < p->count; i++) /* data, plus chunk indexes and headers: a few KiB per dataset */
            need += p->items[i].numel * dl_ckpt_dtype_size(p->items[i].dtype) + 4096;
        char *dir = dl_path_join_suffix(path, "");
        uint64_t free_bytes = 0;
        s = dir ? dl_free_space(dirname(dir), &free_bytes) : DL_FAIL(DL_ERR_NOMEM, "out of memory");
        free(dir);
        if (s == DL_OK && !compress && free_bytes < need) {
            s = DL_FAIL(DL_ERR_IO, "%s: the checkpoint needs %.1f MiB and its file system has %.1f MiB free; "
                        "nothing was written", path, (double)need / 1048576.0, (double)free_bytes / 1048576.0);
            dl_error_hint("free space (or lower ckpt.keep, or set ckpt.compress: true); latest still names the last "
                          "good checkpoint");
        }
        char *name = NULL;
        int fd = -1;
        if (s == DL_OK)
            s = dl_tmp_create(path, &name, &fd);
        if (s == DL_OK) {
            close(fd);
            if (strlen(name) >= cap) {
                unlink(name);
                s = DL_FAIL(DL_ERR_INVALID, "checkpoint path %s is too long", name);
            } else {
                snprintf(tmp, cap, "%s", name);
            }
        }
        free(name);
    }
    DL_CHECK(dl_ckpt_agree(w, s, "checkpoint space"));
    return dl_comm_broadcast(w, tmp, cap, 0, "checkpoint file name");
}

dl_status dl_ckpt_write(dl_world *w, const char *path, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                        const uint8_t *cursor, size_t cursor_len, const dl_ckpt_options *options) {
    DL_REQUIRE(w && path && meta && t && t->params, DL_ERR_INVALID, "dl_ckpt_write: NULL argument");
    dl_ckpt_quiet_hdf5();
    dl_ckpt_options none = {0};
    const dl_ckpt_options *o = options ? options : &none;
    uint64_t numel = dl_tensor_table_numel(t->params);
    /* Local checks first, agreed by all, so no rank enters HDF5's collective calls alone. */
    dl_status local = DL_OK;
    if (w->rank == 0 && !t->params_data)
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: rank 0 passed no parameters");
    else if (t->num_states < 0 || t->num_states > 16 || (t->num_states > 0 && !t->state_names))
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: bad optimizer state list (%d states)", t->num_states);
    else if (t->state_begin > t->state_end || t->state_end > numel)
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: state slice [%zu, %zu) outside the %llu elements",
                        t->state_begin, t->state_end, (unsigned long long)numel);
    else if (cursor_len > 0x7fffffff || (cursor_len && !cursor))
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: bad cursor (%zu bytes)", cursor_len);
    else if (!meta->model_kind[0] || memchr(meta->model_kind, 0, sizeof meta->model_kind) == NULL)
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: no model kind");
    if (local == DL_OK)
        local = dl_ckpt_check_layout(t, o->layout);
    DL_CHECK(dl_ckpt_agree(w, local, "checkpoint arguments"));
    uint64_t fingerprint = dl_ckpt_layout_hash(t, o->layout);
    int64_t fp[2] = {(int64_t)(fingerprint >> 1), -(int64_t)(fingerprint >> 1)};
    DL_CHECK(dl_comm_allreduce_max_i64(w, fp, 2, "checkpoint layout"));
    if (fp[0] != -fp[1])
        return DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: ranks passed different tensor layouts for %s", path);

    /* What shapes the file comes from rank 0. */
    dl_ckpt_meta_wire m;
    dl_ckpt_meta_to_wire(meta, w->size, &m);
    DL_CHECK(dl_comm_broadcast(w, &m, sizeof m, 0, "checkpoint meta"));
    char *config = malloc(m.config_len + 1);
    DL_REQUIRE(config != NULL, DL_ERR_NOMEM, "cannot allocate %llu bytes of config", (unsigned long long)m.config_len);
    if (w->rank == 0 && m.config_len)
        memcpy(config, meta->config_yaml, m.config_len);
    config[m.config_len] = '\0';
    dl_status s = dl_comm_broadcast(w, config, m.config_len, 0, "checkpoint config");

    /* Cursors: gathered on rank 0, their lengths known to all (they shape /data). */
    int *lengths = calloc((size_t)w->size, sizeof(int));
    uint64_t *slices = calloc((size_t)w->size * 2, sizeof(uint64_t));
    void *cursors = NULL;
    if (s == DL_OK && (!lengths || !slices))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate per-rank tables");
    if (s == DL_OK)
        s = dl_comm_gather_bytes(w, cursor, (int)cursor_len, 0, &cursors, lengths, "checkpoint cursors");
    if (s == DL_OK)
        s = dl_comm_broadcast(w, lengths, (size_t)w->size * sizeof(int), 0, "cursor lengths");
    uint64_t mine[2] = {t->state_begin, t->state_end}, state_begin = 0, state_end = 0;
    if (s == DL_OK)
        s = dl_ckpt_allgather_bytes(w, mine, sizeof mine, slices, "optimizer state slices");
    if (s == DL_OK && t->num_states > 0)
        s = dl_ckpt_resolve_slices(slices, w->size, numel, w->rank, &state_begin, &state_end);
    size_t cursor_total = 0;
    for (int r = 0; s == DL_OK && r < w->size; r++)
        cursor_total += (size_t)lengths[r];

    dl_ckpt_plan p = {0};
    if (s == DL_OK)
        s = dl_ckpt_build_plan(&p, w, t, o->layout, state_begin, state_end, cursors, lengths, cursor_total);
    s = dl_ckpt_agree(w, s, "checkpoint plan");
    char tmp[4400] = "";
    if (s == DL_OK)
        s = prepare_tmp(w, path, &p, m.config_len, o->compress, tmp, sizeof tmp);
    int created = s == DL_OK;
    if (s == DL_OK)
        s = write_contents(w, tmp, path, &m, config, t, &p, o);
    if (s == DL_OK)
        dl_ckpt_maybe_kill(w, "close", m.step);
    if (s == DL_OK && w->rank == 0)
        s = o->skip_fsync ? dl_rename_file(tmp, path) : dl_rename_durable(tmp, path);
    if (s != DL_OK && created && w->rank == 0)
        unlink(tmp);
    s = dl_ckpt_agree(w, s, "checkpoint rename");
    dl_ckpt_plan_free(&p);
    free(cursors);
    free(lengths);
    free(slices);
    free(config);
    return s;
}

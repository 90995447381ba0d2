/* crc32c.h — CRC32C (Castagnoli) checksums: record framing (TFRecord) and checkpoint datasets both use them, so
 * they live in core. */
#ifndef DL_CORE_CRC32C_H
#define DL_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CRC32C (Castagnoli), hardware SSE4.2 instruction where the CPU has it. `crc` is the CRC of the bytes before
 * (0 to start): dl_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t dl_crc32c(uint32_t crc, const void *data, size_t len);
/* The table implementation dl_crc32c falls back to without SSE4.2; always built, so tests compare the two. */
uint32_t dl_crc32c_portable(uint32_t crc, const void *data, size_t len);
/* 1 when dl_crc32c uses the SSE4.2 instruction in this build, else 0. */
int dl_crc32c_hardware(void);
/* TensorFlow's masked form stored in record files, and its inverse. */
uint32_t dl_crc32c_mask(uint32_t crc);
uint32_t dl_crc32c_unmask(uint32_t masked);

#ifdef __cplusplus
}
#endif

#endif

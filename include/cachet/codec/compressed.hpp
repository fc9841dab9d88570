#pragma once
// zstd compression as a codec wrapper: Compressed<JsonCodec<Product>>.
//
// Optional: needs libzstd (Debian: libzstd-dev) and the CMake option
// CACHET_WITH_ZSTD (off unless asked; the presets turn it on); cachet::cachet then
// defines CACHET_HAS_ZSTD and links it. Everything else in cachet works without it.
//
// Decoding streams into a buffer that grows with the real output and stops at
// `max_decompressed` (64 MiB by default): the size a frame claims is not trusted.
//
// Only encodings of at least `threshold` bytes are compressed. A compressed
// entry is a standard zstd frame, recognised by the frame's magic number, so
// compressed and plain entries decode side by side (and other languages' zstd
// libraries read them). A plain encoding that happens to start with that magic
// is compressed regardless of its size, which keeps the two unambiguous.
//
// zstd over lz4, measured on product JSON (bench/README.md, bench_compression):
// zstd level 1 writes 26-44 % fewer bytes than lz4 on 3-14 KB values, for about
// 3 us more per decode (8-18 % of parsing that JSON). Values are compressed to
// save Redis memory and network, where zstd's ratio is the point.

#if !__has_include(<zstd.h>)
#error "cachet/codec/compressed.hpp needs libzstd (Debian: libzstd-dev)"
#endif

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/errors.hpp>

#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace cachet {

struct CompressionOptions {
  std::size_t threshold = 1024;  // compress encodings at least this long
  int level = 1;                 // zstd level: 1 is fast, 19 is small
  // Refuse a value that decompresses to more. Checked against the real output,
  // never trusting the size a frame claims: a corrupt value costs at most this.
  std::size_t max_decompressed = 64u << 20;
};

namespace detail {

inline constexpr unsigned char zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};

inline bool is_zstd_frame(std::string_view bytes) noexcept {
  return bytes.size() >= 4 && std::memcmp(bytes.data(), zstd_magic, 4) == 0;
}

struct ZstdContexts {  // one pair per thread: creating them per call costs more than small inputs
  struct FreeC { void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); } };
  struct FreeD { void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); } };
  std::unique_ptr<ZSTD_CCtx, FreeC> compress{ZSTD_createCCtx()};
  std::unique_ptr<ZSTD_DCtx, FreeD> decompress{ZSTD_createDCtx()};

  static ZstdContexts& local() {
    thread_local ZstdContexts contexts;
    if (!contexts.compress || !contexts.decompress) throw std::bad_alloc();
    return contexts;
  }
};

inline std::string zstd_compress(std::string_view in, int level) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const std::size_t n = ZSTD_compressCCtx(ZstdContexts::local().compress.get(), out.data(), out.size(), in.data(),
                                          in.size(), level);
  if (ZSTD_isError(n)) throw EncodeError(std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

// The largest window a frame may ask for: enough for `max_size` of output, and
// never under 8 MiB, what zstd's own encoders use up to level 19 for data of
// unknown size. zstd allocates (but does not touch) a window's worth up front.
inline int zstd_window_log(std::size_t max_size) noexcept {
  const int most = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax).upperBound;
  int log = 23;
  while (log < most && (std::size_t{1} << log) < max_size) ++log;
  return log;
}

// The first output buffer: the size a frame claims, when that is plausible for
// its length (else a frame of a few bytes could make every read allocate the limit).
inline std::size_t first_output_size(unsigned long long claimed, std::size_t frame_size, std::size_t limit) noexcept {
  const std::size_t plausible = std::max<std::size_t>(64u << 10, 32 * frame_size);
  if (claimed == ZSTD_CONTENTSIZE_UNKNOWN) return std::min(plausible, limit);
  return static_cast<std::size_t>(std::min<unsigned long long>({claimed, plausible, limit}));
}

[[noreturn]] inline void throw_over_limit(std::size_t max_size) {
  throw DecodeError("zstd: decompresses to more than " + std::to_string(max_size) +
                    " bytes, over the limit (CompressionOptions::max_decompressed)");
}

// Streams the frame(s) into a buffer that grows with the real output, up to `max_size`.
inline std::string zstd_decompress(std::string_view frame, std::size_t max_size) {
  const unsigned long long claimed = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (claimed == ZSTD_CONTENTSIZE_ERROR) throw DecodeError("zstd: not a valid frame header");
  if (claimed != ZSTD_CONTENTSIZE_UNKNOWN && claimed > max_size) throw_over_limit(max_size);
  ZSTD_DCtx* d = ZstdContexts::local().decompress.get();
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, zstd_window_log(max_size));
  const std::size_t limit = max_size < SIZE_MAX ? max_size + 1 : max_size;  // one more byte tells "too long"
  std::string out(first_output_size(claimed, frame.size(), limit), '\0');
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  for (;;) {
    const std::size_t in_before = in.pos, out_before = o.pos;
    const std::size_t r = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(r)) throw DecodeError(std::string("zstd: ") + ZSTD_getErrorName(r));
    if (o.pos > max_size) throw_over_limit(max_size);
    if (r == 0 && in.pos == in.size) break;  // every frame complete and flushed
    if (o.pos < o.size) {  // zstd stopped with room left: it wants input, or a next frame follows
      if (in.pos == in.size) throw DecodeError("zstd: truncated frame");
      if (in.pos == in_before && o.pos == out_before) throw DecodeError("zstd: frame makes no progress");
      continue;
    }
    if (out.size() == limit) throw_over_limit(max_size);
    out.resize(std::min(limit, std::max(out.size() * 2, std::size_t{4096})));
    o = ZSTD_outBuffer{out.data(), out.size(), o.pos};
  }
  out.resize(o.pos);
  return out;
}

}  // namespace detail

template <Codec Inner>
class Compressed {
 public:
  using value_type = typename Inner::value_type;
  static constexpr std::uint8_t id = Inner::id;

  explicit Compressed(CompressionOptions options = {}, Inner inner = {})
      : options_(options), inner_(std::move(inner)) {}

  std::string encode(const value_type& value) const {
    std::string plain = inner_.encode(value);
    if (plain.size() < options_.threshold && !detail::is_zstd_frame(plain)) return plain;
    return detail::zstd_compress(plain, options_.level);
  }

  value_type decode(std::string_view bytes) const {
    if (!detail::is_zstd_frame(bytes)) return inner_.decode(bytes);
    return inner_.decode(detail::zstd_decompress(bytes, options_.max_decompressed));
  }

  // Whether an encoding is a compressed one (the envelope records it as a flag).
  static bool is_compressed(std::string_view bytes) noexcept { return detail::is_zstd_frame(bytes); }

  const CompressionOptions& options() const noexcept { return options_; }

 private:
  CompressionOptions options_;
  Inner inner_;
};

}  // namespace cachet

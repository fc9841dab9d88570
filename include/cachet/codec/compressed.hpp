#pragma once
// zstd compression as a codec wrapper: Compressed<JsonCodec<Product>>.
//
// Optional: needs libzstd (Debian: libzstd-dev) and the CMake option
// CACHET_WITH_ZSTD (on by default when libzstd is found); cachet::cachet then
// defines CACHET_HAS_ZSTD and links it. Everything else in cachet works without it.
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

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace cachet {

struct CompressionOptions {
  std::size_t threshold = 1024;                   // compress encodings at least this long
  int level = 1;                                  // zstd level: 1 is fast, 19 is small
  std::size_t max_decompressed = 512u << 20;      // refuse frames that claim more (Redis' own limit)
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

inline std::string zstd_decompress(std::string_view frame, std::size_t max_size) {
  const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) throw DecodeError("zstd: not a valid frame header");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) throw DecodeError("zstd: frame without a content size");
  if (size > max_size) throw DecodeError("zstd: frame claims " + std::to_string(size) + " bytes, over the limit");
  std::string out(static_cast<std::size_t>(size), '\0');
  const std::size_t n =
      ZSTD_decompressDCtx(ZstdContexts::local().decompress.get(), out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) throw DecodeError(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != out.size()) throw DecodeError("zstd: frame shorter than its declared size");
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

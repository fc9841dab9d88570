// libFuzzer target for the reply path: bytes a server might send, fed in pieces
// (the first input byte picks their size) through the bounded reply reader. The
// reader may return replies or an error; an exception (even bad_alloc: the bound
// must refuse first), a sanitizer report, a crash or a hang is a finding.
#include <cachet/redis/detail/reply_reader.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0];
  const char* bytes = reinterpret_cast<const char*>(data) + 1;
  const std::size_t length = size - 1;
  cachet::detail::ReplyReader reader(std::size_t{1} << 16);
  for (std::size_t fed = 0; fed < length;) {
    const std::size_t n = std::min(piece, length - fed);
    if (!reader.feed(bytes + fed, n)) return 0;
    fed += n;
    for (cachet::detail::ReplyPtr reply;;) {
      if (!reader.next(reply)) return 0;
      if (!reply) break;
    }
  }
  return 0;
}

#pragma once
// The raw hiredis baseline's connection: a plain redisContext to the bench
// server's TCP port, freed with the benchmark.

#include <hiredis/hiredis.h>

#include <stdexcept>

namespace cachet::bench {

struct RawContext {
  redisContext* c;
  explicit RawContext(int port) : c(redisConnect("127.0.0.1", port)) {
    if (!c || c->err) {
      redisFree(c);
      throw std::runtime_error("raw hiredis connect failed");
    }
  }
  RawContext(const RawContext&) = delete;
  RawContext& operator=(const RawContext&) = delete;
  ~RawContext() { redisFree(c); }
};

}  // namespace cachet::bench

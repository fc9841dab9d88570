#pragma once
// hiredis' reply parser (redisReader), fed with what the Stream returns and
// bounded: one budget of max_reply_bytes per reply counts its bytes received
// plus what hiredis allocates for its arrays (a pointer slot and a redisReply
// per element), charged when an array header arrives, before hiredis allocates
// it; nested arrays add up. A bulk string length over the bound is refused at
// its header. Memory for one reply thus stays within a small multiple of the bound.

#include <cachet/redis/detail/hiredis.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace cachet::detail {

class ReplyReader {
 public:
  explicit ReplyReader(std::size_t max_reply_bytes) : max_bytes_(max_reply_bytes), reader_(redisReaderCreate()) {
    if (reader_ == nullptr) throw std::bad_alloc();
    // redisReaderCreate points fn at hiredis' static default table: use a copy
    // whose createArray checks the size first (the default freeObject still frees).
    functions_ = *reader_->fn;
    create_array_ = functions_.createArray;
    functions_.createArray = bounded_array;
    reader_->fn = &functions_;
    reader_->privdata = this;  // hiredis hands it to createArray as task->privdata
  }
  ~ReplyReader() { redisReaderFree(reader_); }
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // False on an error (see error()); the reader is unusable after it.
  bool feed(const char* data, std::size_t size) {
    fed_ += size;
    return redisReaderFeed(reader_, data, size) == REDIS_OK || set_error();
  }

  // The next complete reply into `out` (null when more input is needed); false
  // on a protocol error or a reply over the bound (see error()).
  bool next(ReplyPtr& out) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return set_error();
    out.reset(static_cast<redisReply*>(raw));
    const std::size_t unread = reader_->len - reader_->pos;
    if (raw != nullptr) {
      const std::size_t size = fed_ - unread - reply_start_ + allocated_;
      reply_start_ = fed_ - unread;  // what is left belongs to the next replies
      allocated_ = 0;                // and a fresh budget
      if (size > max_bytes_) {
        out.reset();
        return refuse(fmt::format("a reply of {} bytes exceeds max_reply_bytes ({})", size, max_bytes_));
      }
      return true;
    }
    // Everything unread now belongs to the one incomplete reply.
    if (const std::size_t size = fed_ - reply_start_ + allocated_; size > max_bytes_)
      return refuse(fmt::format("a reply of more than {} bytes exceeds max_reply_bytes ({})", size, max_bytes_));
    if (const long long len = pending_bulk_length(); len >= 0 && static_cast<unsigned long long>(len) > max_bytes_)
      return refuse(fmt::format("a bulk string of {} bytes exceeds max_reply_bytes ({})", len, max_bytes_));
    return true;
  }

  const std::string& error() const noexcept { return error_; }
  // The error was hiredis running out of memory (a std::bad_alloc, not bad input).
  bool out_of_memory() const noexcept { return reader_->err == REDIS_ERR_OOM && refused_.empty(); }

 private:
  template <class N>  // int in hiredis 0.14, size_t in 1.x
  static void* bounded_array(const redisReadTask* task, N elements) {
    auto* self = static_cast<ReplyReader*>(task->privdata);
    bool negative = false;
    if constexpr (std::is_signed_v<N>) negative = elements < 0;
    constexpr std::size_t per_element = sizeof(redisReply*) + sizeof(redisReply);
    const std::size_t left = self->max_bytes_ - self->allocated_;  // allocated_ <= max_bytes_ always
    if (negative || static_cast<unsigned long long>(elements) > left / per_element) {
      self->refused_ = fmt::format("an array of {} elements exceeds max_reply_bytes ({}), {} bytes of the reply already used",
                                   elements, self->max_bytes_, self->allocated_);
      return nullptr;  // hiredis reports out of memory, which set_error() replaces
    }
    self->allocated_ += static_cast<std::size_t>(elements) * per_element;
    return self->create_array_(task, elements);
  }

  // The length a bulk string being read announced, or -1: hiredis keeps its
  // cursor just past the '$' until the whole string has arrived.
  long long pending_bulk_length() const noexcept {
#if HIREDIS_MAJOR >= 1
    if (reader_->ridx < 0 || reader_->task[reader_->ridx]->type != REDIS_REPLY_STRING) return -1;
#else
    if (reader_->ridx < 0 || reader_->rstack[reader_->ridx].type != REDIS_REPLY_STRING) return -1;
#endif
    const char* p = reader_->buf + reader_->pos;
    const char* end = reader_->buf + reader_->len;
    if (p == end || *p < '0' || *p > '9') return -1;
    long long len = 0;
    for (; p != end && *p >= '0' && *p <= '9' && len < (1LL << 50); ++p) len = len * 10 + (*p - '0');
    return len;
  }

  bool refuse(std::string why) {
    error_ = std::move(why);
    return false;
  }
  bool set_error() {
    if (!refused_.empty()) return refuse(refused_);
    return refuse(reader_->errstr[0] != '\0' ? reader_->errstr : "unknown reply parser error");
  }

  std::size_t max_bytes_;
  redisReader* reader_;
  redisReplyObjectFunctions functions_{};
  decltype(redisReplyObjectFunctions::createArray) create_array_ = nullptr;
  std::size_t fed_ = 0;          // bytes fed so far
  std::size_t reply_start_ = 0;  // fed_ where the reply being read began
  std::size_t allocated_ = 0;    // what the reply being read had hiredis allocate for arrays
  std::string refused_;          // set by bounded_array (hiredis then says out of memory)
  std::string error_;
};

}  // namespace cachet::detail

#pragma once
// A Redis reply with typed accessors. `Reply` owns what hiredis returned;
// `ReplyView` is a non-owning handle used for array elements.

#include <cachet/redis/detail/hiredis.hpp>
#include <cachet/redis/errors.hpp>

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace cachet {

enum class ReplyType { string, array, integer, nil, status, error, other };

inline const char* to_string(ReplyType t) noexcept {
  switch (t) {
    case ReplyType::string: return "string";
    case ReplyType::array: return "array";
    case ReplyType::integer: return "integer";
    case ReplyType::nil: return "nil";
    case ReplyType::status: return "status";
    case ReplyType::error: return "error";
    case ReplyType::other: break;
  }
  return "other";
}

class ReplyView {
 public:
  explicit ReplyView(const redisReply* r) noexcept : r_(r) {}

  ReplyType type() const noexcept {
    switch (r_->type) {
      case REDIS_REPLY_STRING: return ReplyType::string;
      case REDIS_REPLY_ARRAY: return ReplyType::array;
      case REDIS_REPLY_INTEGER: return ReplyType::integer;
      case REDIS_REPLY_NIL: return ReplyType::nil;
      case REDIS_REPLY_STATUS: return ReplyType::status;
      case REDIS_REPLY_ERROR: return ReplyType::error;
#ifdef REDIS_REPLY_MAP  // hiredis 1.x, RESP3: sets, pushes and maps read as arrays
      case REDIS_REPLY_SET:
      case REDIS_REPLY_PUSH:
      case REDIS_REPLY_MAP: return ReplyType::array;
#endif
      default: return ReplyType::other;
    }
  }

  bool is_string() const noexcept { return type() == ReplyType::string; }
  bool is_array() const noexcept { return type() == ReplyType::array; }
  bool is_integer() const noexcept { return type() == ReplyType::integer; }
  bool is_nil() const noexcept { return type() == ReplyType::nil; }
  bool is_status() const noexcept { return type() == ReplyType::status; }
  bool is_error() const noexcept { return type() == ReplyType::error; }

  // Bulk string; throws ReplyError for an error reply, ReplyTypeError otherwise.
  std::string_view as_string() const {
    expect(ReplyType::string);
    return {r_->str, r_->len};
  }
  // Bulk string or nil.
  std::optional<std::string_view> as_optional_string() const {
    if (is_nil()) return std::nullopt;
    return as_string();
  }
  std::string_view as_status() const {
    expect(ReplyType::status);
    return {r_->str, r_->len};
  }
  long long as_integer() const {
    expect(ReplyType::integer);
    return r_->integer;
  }
  // The server's message of an error reply.
  std::string_view error_message() const {
    expect_exact(ReplyType::error);
    return {r_->str, r_->len};
  }
  // Throws ReplyError when this is an error reply; a no-op otherwise.
  void throw_if_error() const {
    if (is_error()) throw ReplyError(std::string(r_->str, r_->len));
  }

  // Array access.
  std::size_t size() const {
    expect(ReplyType::array);
    return r_->elements;
  }
  ReplyView operator[](std::size_t i) const {
    if (i >= size()) throw ReplyTypeError("redis reply: array index out of range");
    return ReplyView(r_->element[i]);
  }

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ReplyView;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = ReplyView;
    iterator() = default;
    explicit iterator(redisReply* const* p) : p_(p) {}
    ReplyView operator*() const { return ReplyView(*p_); }
    iterator& operator++() { ++p_; return *this; }
    iterator operator++(int) { auto t = *this; ++p_; return t; }
    bool operator==(const iterator&) const = default;
   private:
    redisReply* const* p_ = nullptr;
  };
  iterator begin() const { return iterator(size() ? r_->element : nullptr); }
  iterator end() const { return iterator(size() ? r_->element + r_->elements : nullptr); }

  const redisReply* native_handle() const noexcept { return r_; }

 protected:
  void view_nil() noexcept {
    static const redisReply nil = [] {
      redisReply r{};
      r.type = REDIS_REPLY_NIL;
      return r;
    }();
    r_ = &nil;
  }

 private:
  void expect(ReplyType want) const {
    const ReplyType got = type();
    if (got == want) return;
    throw_if_error();
    throw ReplyTypeError(std::string("redis reply: expected ") + to_string(want) + ", got " + to_string(got));
  }
  void expect_exact(ReplyType want) const {
    const ReplyType got = type();
    if (got != want)
      throw ReplyTypeError(std::string("redis reply: expected ") + to_string(want) + ", got " + to_string(got));
  }

  const redisReply* r_;
};

class Reply : public ReplyView {
 public:
  explicit Reply(detail::ReplyPtr owned) noexcept : ReplyView(owned.get()), owned_(std::move(owned)) {}
  // A moved-from Reply reads as nil instead of pointing at memory it no longer owns.
  Reply(Reply&& o) noexcept : ReplyView(o), owned_(std::move(o.owned_)) { o.view_nil(); }
  Reply& operator=(Reply&& o) noexcept {
    if (this != &o) {
      ReplyView::operator=(o);
      owned_ = std::move(o.owned_);
      o.view_nil();
    }
    return *this;
  }

  // On a named Reply the string accessors view its memory; on a temporary they
  // return a copy, so `auto s = conn.command({"GET", k}).as_string();` cannot dangle.
  std::string_view as_string() const& { return ReplyView::as_string(); }
  std::string as_string() && { return std::string(ReplyView::as_string()); }
  std::optional<std::string_view> as_optional_string() const& { return ReplyView::as_optional_string(); }
  std::optional<std::string> as_optional_string() && {
    auto v = ReplyView::as_optional_string();
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  }
  std::string_view as_status() const& { return ReplyView::as_status(); }
  std::string as_status() && { return std::string(ReplyView::as_status()); }
  std::string_view error_message() const& { return ReplyView::error_message(); }
  std::string error_message() && { return std::string(ReplyView::error_message()); }

 private:
  detail::ReplyPtr owned_;
};

}  // namespace cachet

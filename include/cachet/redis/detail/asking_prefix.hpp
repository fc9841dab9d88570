#pragma once
// Connection's asking mode, for Redis Cluster's ASK target: while on, each
// command appended gets ASKING before it (Redis honours it for one command;
// inside MULTI one before MULTI lasts until EXEC, and a queued ASKING would add
// an element to EXEC's answer), and the reader drops those ASKING replies.

#include <algorithm>
#include <cctype>
#include <deque>
#include <string>
#include <string_view>

namespace cachet::detail {

class AskingPrefix {
 public:
  bool on() const noexcept { return on_; }
  void set(bool on) noexcept {
    on_ = on;
    reset();
  }
  // Nothing pending any more (the connection closed).
  void reset() noexcept {
    in_multi_ = false;
    asked_.clear();
  }

  // Before a command `verb` is appended to `out`: appends ASKING when it needs
  // one; true then (one more reply pending).
  bool prefix(std::string_view verb, std::string& out) {
    const bool ask = !in_multi_;
    if (same_verb(verb, "MULTI")) in_multi_ = true;
    else if (same_verb(verb, "EXEC") || same_verb(verb, "DISCARD")) in_multi_ = false;
    asked_.push_back(ask);
    if (ask) out.append("*1\r\n$6\r\nASKING\r\n");
    return ask;
  }

  // Before a command's reply is read: whether an ASKING reply (+OK; an error
  // there shows in the command's own reply) comes first. Takes the command's
  // entry, prefixed or not (inside MULTI).
  bool take() noexcept {
    if (asked_.empty()) return false;
    const bool asked = asked_.front();
    asked_.pop_front();
    return asked;
  }

 private:
  static bool same_verb(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  }

  bool on_ = false;
  bool in_multi_ = false;    // between MULTI and EXEC/DISCARD
  std::deque<bool> asked_;   // whether each pending command has an ASKING before it
};

}  // namespace cachet::detail

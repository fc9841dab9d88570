#pragma once
// SIEVE eviction order (Zhang et al., NSDI '24) over an intrusive list: new
// entries go in at the head; a hit only sets the entry's visited bit (no list
// move, so a hit writes nothing but that bit); the hand walks from the oldest
// entry towards the newest, clears visited bits as it passes, and evicts the
// first entry it finds unvisited. Survivors keep their place, so new entries
// that are never hit again leave quickly while popular ones stay.
//
// Node needs `Node* newer; Node* older;` and `bool visited() const` /
// `void visit(bool)`. Not thread-safe: the owner serialises access.

#include <cassert>

namespace cachet::detail {

template <class Node>
class SieveQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }

  void push(Node* n) noexcept {
    n->newer = nullptr;
    n->older = head_;
    (head_ ? head_->newer : tail_) = n;
    head_ = n;
  }

  void erase(Node* n) noexcept {
    if (hand_ == n) hand_ = n->newer;
    (n->newer ? n->newer->older : head_) = n->older;
    (n->older ? n->older->newer : tail_) = n->newer;
  }

  // The entry to evict next: the first one from the hand on that is unvisited
  // or `doomed` (expired: taken at once, visited or not). The caller erases it,
  // which moves the hand past it. The queue must not be empty.
  template <class Doomed>
  Node* victim(Doomed doomed) noexcept {
    assert(!empty());
    Node* n = hand_ ? hand_ : tail_;
    while (n->visited() && !doomed(n)) {
      n->visit(false);
      n = n->newer ? n->newer : tail_;  // past the newest, start again at the oldest
    }
    hand_ = n;
    return n;
  }

  void clear() noexcept { head_ = tail_ = hand_ = nullptr; }

 private:
  Node* head_ = nullptr;  // newest
  Node* tail_ = nullptr;  // oldest
  Node* hand_ = nullptr;  // where the next eviction looks first; nullptr = at the oldest
};

}  // namespace cachet::detail

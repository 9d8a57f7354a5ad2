// Shape: a tensor's dimensions, held inline.
//
// A training step copies shapes all the time (every op's output, every
// tensor copy, every view), so a Shape keeps up to kInlineRank dims in
// itself and copying one allocates nothing. A longer one (ranks above
// kInlineRank: legal in a graph, refused on the wire, which allows 8)
// spills to the heap and behaves the same. The interface is the part of
// std::vector<int64_t> that shapes use; it converts to and from one for
// configs and codecs; common/wire_archive.h serializes it as one.
#pragma once

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace cairn {

class Shape {
 public:
  static constexpr size_t kInlineRank = 6;
  using value_type = int64_t;
  using size_type = size_t;
  using iterator = int64_t*;
  using const_iterator = const int64_t*;
  using reference = int64_t&;
  using const_reference = const int64_t&;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }  // NOLINT: implicit by design
  explicit Shape(size_t rank, int64_t dim = 0) { resize(rank, dim); }
  template <class It, class = decltype(*std::declval<It>())>
  Shape(It first, It last) {
    assign(first, last);
  }

  template <class It>
  void assign(It first, It last) {
    clear();
    for (; first != last; ++first) push_back(*first);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t* data() { return size_ <= kInlineRank ? inline_ : spill_.data(); }
  const int64_t* data() const { return size_ <= kInlineRank ? inline_ : spill_.data(); }
  int64_t& operator[](size_t i) { return data()[i]; }
  const int64_t& operator[](size_t i) const { return data()[i]; }
  int64_t& front() { return data()[0]; }
  const int64_t& front() const { return data()[0]; }
  int64_t& back() { return data()[size_ - 1]; }
  const int64_t& back() const { return data()[size_ - 1]; }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }

  void clear() {
    size_ = 0;
    spill_.clear();
  }
  void push_back(int64_t dim) {
    if (size_ < kInlineRank) {
      inline_[size_++] = dim;
      return;
    }
    if (size_ == kInlineRank) spill_.assign(inline_, inline_ + kInlineRank);
    spill_.push_back(dim);
    ++size_;
  }
  void pop_back() { resize(size_ - 1); }
  void resize(size_t rank, int64_t dim = 0) {
    while (size_ > rank) {
      --size_;
      if (size_ >= kInlineRank) spill_.pop_back();
      if (size_ == kInlineRank) {
        std::copy(spill_.begin(), spill_.end(), inline_);
        spill_.clear();
      }
    }
    while (size_ < rank) push_back(dim);
  }
  // Inserts `dim` before `pos` (an iterator into this shape).
  iterator insert(const_iterator pos, int64_t dim) {
    const size_t at = static_cast<size_t>(pos - begin());
    push_back(dim);
    std::rotate(begin() + at, end() - 1, end());
    return begin() + at;
  }
  iterator erase(const_iterator pos) {
    const size_t at = static_cast<size_t>(pos - begin());
    std::rotate(begin() + at, begin() + at + 1, end());
    pop_back();
    return begin() + at;
  }

  std::vector<int64_t> ToVector() const { return {begin(), end()}; }

  friend bool operator==(const Shape& a, const Shape& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }
  friend std::strong_ordering operator<=>(const Shape& a, const Shape& b) {
    return std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  uint32_t size_ = 0;
  int64_t inline_[kInlineRank] = {};  // dims [0, size_) while size_ <= kInlineRank
  std::vector<int64_t> spill_;        // every dim once size_ > kInlineRank; else empty
};

}  // namespace cairn

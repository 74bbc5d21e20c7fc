// A blocking TCP socket read through one buffer, a line or a run of bytes at a time: the IBP wire as
// the bench's compiled client (ibp-bulk-client.cc) and its least depot (raw-file-depot.cc) speak it.
// Every call reports failure by its result; `errno` says why (0: the peer closed the connection).
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

class LineSocket {
 public:
  LineSocket(int fd, size_t buffer_bytes) : fd_(fd), buf_(buffer_bytes) {}
  ~LineSocket() {
    if (fd_ >= 0) close(fd_);
  }
  LineSocket(const LineSocket&) = delete;
  LineSocket& operator=(const LineSocket&) = delete;

  // Sends all `n` bytes of `data`.
  bool send_all(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t k = send(fd_, p, n, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }

  // The next line, without its newline; false at the end of the stream, on an error, or when a
  // line runs past `max_line` bytes (errno EMSGSIZE).
  bool line(std::string* out, size_t max_line = 4096) {
    for (;;) {
      for (size_t i = start_; i < end_; i++) {
        if (buf_[i] == '\n') {
          out->assign(buf_.data() + start_, i - start_);
          start_ = i + 1;
          return true;
        }
      }
      if (end_ - start_ > max_line) {
        errno = EMSGSIZE;
        return false;
      }
      if (!fill()) return false;
    }
  }

  // The bytes received and not yet taken; `take(n)` consumes the first `n` of them, `fill()`
  // receives more (false at the end of the stream or on an error).
  const char* data() const { return buf_.data() + start_; }
  size_t available() const { return end_ - start_; }
  void take(size_t n) { start_ += n; }
  bool fill() {
    if (start_ == end_) start_ = end_ = 0;
    if (end_ == buf_.size()) {
      if (start_ == 0) {
        errno = ENOBUFS;  // full of bytes not yet taken: nothing can be received
        return false;
      }
      std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
      end_ -= start_;
      start_ = 0;
    }
    for (;;) {
      const ssize_t k = recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k == 0) errno = 0;
      if (k <= 0) return false;
      end_ += static_cast<size_t>(k);
      return true;
    }
  }

 private:
  int fd_;
  std::vector<char> buf_;
  size_t start_ = 0, end_ = 0;
};

// The space-separated tokens of a line.
inline std::vector<std::string> tokens(const std::string& line) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < line.size()) {
    const size_t sp = line.find(' ', at);
    const size_t end = sp == std::string::npos ? line.size() : sp;
    if (end > at) out.push_back(line.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// The least a depot can do for `npm run bench:depot`'s bulk shape: a C++ server that speaks just
// enough of the IBP wire for the compiled client (STORE, WRITE, LOAD) and keeps each allocation as a
// plain file, with no metadata and no capability checks. A thread per connection, blocking calls:
// recv into a 1 MiB buffer and pwrite, or pread and send. With SYNC `sync`, every STORE and WRITE is
// fdatasynced before its reply, and a new file's directory entry is synced once, as the least a
// `--fsync safe` depot must do.
//
// With `md5`, it also does the checksum work of a C depot that keeps an MD5 digest per 64 KiB block
// (as the ACCRE depot's disk resource does by default): each whole block a STORE or WRITE brings is
// digested as it arrives (a block the write covers in part is read back from the file and digested
// whole), and every block a LOAD reads is digested and checked before it is sent (a mismatch cuts
// the connection). The digests are kept in memory. What such a depot does beyond this (block
// headers in the file, its own buffering and threads, metadata) only costs it more.
//
//   raw-file-depot DIR fast|sync [md5]
//
// Prints the port it listens on (127.0.0.1, a free one) and serves until killed. An allocation is
// named by its key token (the command's third token); its file is created under DIR at its first
// STORE or WRITE. Not a ceiling for writes: a depot that prepares its files (as Anvil's warm files
// are) writes into pages already in memory, where this one pays a fresh page per 4 KiB.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "line-socket.h"

namespace {

std::string dir;
bool sync_writes = false;
bool digests = false;

// MD5 (RFC 1321), written out here so the tool needs no library.
class Md5 {
 public:
  Md5() { reset(); }
  void reset() {
    state_[0] = 0x67452301;
    state_[1] = 0xefcdab89;
    state_[2] = 0x98badcfe;
    state_[3] = 0x10325476;
    bytes_ = 0;
    held_ = 0;
  }
  void add(const unsigned char* p, size_t n) {
    bytes_ += n;
    if (held_ > 0) {
      const size_t k = std::min(n, sizeof block_ - held_);
      std::memcpy(block_ + held_, p, k);
      held_ += k;
      p += k;
      n -= k;
      if (held_ < sizeof block_) return;
      compress(block_);
      held_ = 0;
    }
    for (; n >= 64; p += 64, n -= 64) compress(p);
    std::memcpy(block_, p, n);
    held_ = n;
  }
  // The digest of everything added since the last reset (the state is left spent).
  std::array<unsigned char, 16> digest() {
    const uint64_t bits = bytes_ * 8;
    unsigned char pad[72] = {0x80};
    const size_t padding = (held_ < 56 ? 56 : 120) - held_;
    add(pad, padding);
    unsigned char length[8];
    for (int i = 0; i < 8; i++) length[i] = static_cast<unsigned char>(bits >> (8 * i));
    add(length, 8);
    std::array<unsigned char, 16> out{};
    for (int i = 0; i < 16; i++) out[i] = static_cast<unsigned char>(state_[i / 4] >> (8 * (i % 4)));
    return out;
  }

 private:
  static uint32_t rotl(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }
  static uint32_t F(uint32_t x, uint32_t y, uint32_t z) { return z ^ (x & (y ^ z)); }
  // (x & z) | (y & ~z): two disjoint halves, so a sum, whose terms the CPU computes side by side.
  static uint32_t G(uint32_t x, uint32_t y, uint32_t z) { return (x & z) + (y & ~z); }
  static uint32_t H(uint32_t x, uint32_t y, uint32_t z) { return x ^ y ^ z; }
  static uint32_t I(uint32_t x, uint32_t y, uint32_t z) { return y ^ (x | ~z); }
  static void step(uint32_t f, uint32_t& a, uint32_t b, uint32_t x, uint32_t t, int s) { a = b + rotl((a + x + t) + f, s); }
  // One 64-byte block, its 64 steps written out (a loop that picks the function and word each step
  // runs at two thirds of the speed).
  void compress(const unsigned char* p) {
    // K[i] = floor(|sin(i + 1)| · 2^32), as the RFC defines them.
    static const std::array<uint32_t, 64> k = [] {
      std::array<uint32_t, 64> t{};
      for (int i = 0; i < 64; i++) t[i] = static_cast<uint32_t>(std::floor(std::fabs(std::sin(i + 1.0)) * 4294967296.0));
      return t;
    }();
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
      m[i] = static_cast<uint32_t>(p[4 * i]) | static_cast<uint32_t>(p[4 * i + 1]) << 8 |
             static_cast<uint32_t>(p[4 * i + 2]) << 16 | static_cast<uint32_t>(p[4 * i + 3]) << 24;
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    step(F(b, c, d), a, b, m[0], k[0], 7);
    step(F(a, b, c), d, a, m[1], k[1], 12);
    step(F(d, a, b), c, d, m[2], k[2], 17);
    step(F(c, d, a), b, c, m[3], k[3], 22);
    step(F(b, c, d), a, b, m[4], k[4], 7);
    step(F(a, b, c), d, a, m[5], k[5], 12);
    step(F(d, a, b), c, d, m[6], k[6], 17);
    step(F(c, d, a), b, c, m[7], k[7], 22);
    step(F(b, c, d), a, b, m[8], k[8], 7);
    step(F(a, b, c), d, a, m[9], k[9], 12);
    step(F(d, a, b), c, d, m[10], k[10], 17);
    step(F(c, d, a), b, c, m[11], k[11], 22);
    step(F(b, c, d), a, b, m[12], k[12], 7);
    step(F(a, b, c), d, a, m[13], k[13], 12);
    step(F(d, a, b), c, d, m[14], k[14], 17);
    step(F(c, d, a), b, c, m[15], k[15], 22);
    step(G(b, c, d), a, b, m[1], k[16], 5);
    step(G(a, b, c), d, a, m[6], k[17], 9);
    step(G(d, a, b), c, d, m[11], k[18], 14);
    step(G(c, d, a), b, c, m[0], k[19], 20);
    step(G(b, c, d), a, b, m[5], k[20], 5);
    step(G(a, b, c), d, a, m[10], k[21], 9);
    step(G(d, a, b), c, d, m[15], k[22], 14);
    step(G(c, d, a), b, c, m[4], k[23], 20);
    step(G(b, c, d), a, b, m[9], k[24], 5);
    step(G(a, b, c), d, a, m[14], k[25], 9);
    step(G(d, a, b), c, d, m[3], k[26], 14);
    step(G(c, d, a), b, c, m[8], k[27], 20);
    step(G(b, c, d), a, b, m[13], k[28], 5);
    step(G(a, b, c), d, a, m[2], k[29], 9);
    step(G(d, a, b), c, d, m[7], k[30], 14);
    step(G(c, d, a), b, c, m[12], k[31], 20);
    step(H(b, c, d), a, b, m[5], k[32], 4);
    step(H(a, b, c), d, a, m[8], k[33], 11);
    step(H(d, a, b), c, d, m[11], k[34], 16);
    step(H(c, d, a), b, c, m[14], k[35], 23);
    step(H(b, c, d), a, b, m[1], k[36], 4);
    step(H(a, b, c), d, a, m[4], k[37], 11);
    step(H(d, a, b), c, d, m[7], k[38], 16);
    step(H(c, d, a), b, c, m[10], k[39], 23);
    step(H(b, c, d), a, b, m[13], k[40], 4);
    step(H(a, b, c), d, a, m[0], k[41], 11);
    step(H(d, a, b), c, d, m[3], k[42], 16);
    step(H(c, d, a), b, c, m[6], k[43], 23);
    step(H(b, c, d), a, b, m[9], k[44], 4);
    step(H(a, b, c), d, a, m[12], k[45], 11);
    step(H(d, a, b), c, d, m[15], k[46], 16);
    step(H(c, d, a), b, c, m[2], k[47], 23);
    step(I(b, c, d), a, b, m[0], k[48], 6);
    step(I(a, b, c), d, a, m[7], k[49], 10);
    step(I(d, a, b), c, d, m[14], k[50], 15);
    step(I(c, d, a), b, c, m[5], k[51], 21);
    step(I(b, c, d), a, b, m[12], k[52], 6);
    step(I(a, b, c), d, a, m[3], k[53], 10);
    step(I(d, a, b), c, d, m[10], k[54], 15);
    step(I(c, d, a), b, c, m[1], k[55], 21);
    step(I(b, c, d), a, b, m[8], k[56], 6);
    step(I(a, b, c), d, a, m[15], k[57], 10);
    step(I(d, a, b), c, d, m[6], k[58], 15);
    step(I(c, d, a), b, c, m[13], k[59], 21);
    step(I(b, c, d), a, b, m[4], k[60], 6);
    step(I(a, b, c), d, a, m[11], k[61], 10);
    step(I(d, a, b), c, d, m[2], k[62], 15);
    step(I(c, d, a), b, c, m[9], k[63], 21);
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
  }
  uint32_t state_[4];
  uint64_t bytes_;
  unsigned char block_[64];
  size_t held_;
};

constexpr size_t kBlock = 64 * 1024;
using Digest = std::array<unsigned char, 16>;

struct File {
  int fd = -1;
  size_t size = 0;  // bytes stored so far (where the next STORE goes)
  // With `md5`: the digest of each block written, by block number (guarded by files_lock).
  std::map<size_t, Digest> digests;
};
std::mutex files_lock;
std::map<std::string, File> files;

// The file of allocation `key`, created if need be, reserving `append` bytes past its STORE
// offset, which goes to `at`.
File* file_of(const std::string& key, size_t append, size_t* at) {
  std::lock_guard<std::mutex> g(files_lock);
  File& f = files[key];
  if (f.fd < 0) {
    std::string name;
    for (char c : key) name += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
    f.fd = open((dir + "/" + name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f.fd < 0) return nullptr;
    if (sync_writes) {
      // The new name, durable before the file's first acknowledgement (or the file is forgotten, so
      // that the next command tries again).
      const int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      const bool ok = d >= 0 && fsync(d) == 0;
      if (d >= 0) close(d);
      if (!ok) {
        close(f.fd);
        f.fd = -1;
        return nullptr;
      }
    }
  }
  if (at != nullptr) *at = f.size;
  f.size += append;
  return &f;
}

Digest md5_of(const unsigned char* p, size_t n) {
  Md5 m;
  m.add(p, n);
  return m.digest();
}

// Reads up to `n` bytes of `fd` at `at` into `buf` (again after a short read, until the end of the
// file); the bytes read, or -1 on an error.
ssize_t read_at(int fd, unsigned char* buf, size_t n, size_t at) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = pread(fd, buf + got, n - got, static_cast<off_t>(at + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

void keep_digest(File* f, size_t block, const Digest& d) {
  std::lock_guard<std::mutex> g(files_lock);
  f->digests[block] = d;
}

// The digest of block `block` as the file holds it now (up to its end), into `out`.
bool file_digest(File* f, size_t block, std::vector<unsigned char>* scratch, Digest* out) {
  struct stat st {};
  if (fstat(f->fd, &st) != 0) return false;
  const size_t from = block * kBlock;
  const size_t to = std::min(from + kBlock, static_cast<size_t>(st.st_size));
  scratch->resize(kBlock);
  if (to > from && read_at(f->fd, scratch->data(), to - from, from) != static_cast<ssize_t>(to - from)) return false;
  *out = md5_of(scratch->data(), to > from ? to - from : 0);
  return true;
}

// A client's connection: bodies go from the socket's buffer straight into their file.
class Connection {
 public:
  explicit Connection(int fd) : sock_(fd, 1 << 20) {}

  bool reply(const std::string& line) { return sock_.send_all(line.data(), line.size()); }
  bool send_all(const void* data, size_t n) { return sock_.send_all(data, n); }
  bool line(std::string* out) { return sock_.line(out); }

  // Receives `n` body bytes into file `f` at `at`, a buffer at a time; with `md5`, digests each
  // whole block of them as it arrives, and the blocks it covers in part from the file afterwards.
  bool body_to(File* f, size_t at, size_t n) {
    const size_t first = at, end = at + n;
    Md5 md5;
    while (n > 0) {
      if (sock_.available() == 0 && !sock_.fill()) return false;
      const size_t k = std::min(n, sock_.available());
      for (size_t done = 0; done < k;) {
        const ssize_t w = pwrite(f->fd, sock_.data() + done, k - done, static_cast<off_t>(at + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        done += static_cast<size_t>(w);
      }
      for (size_t done = 0; digests && done < k;) {
        const size_t pos = at + done;
        const size_t block = pos / kBlock;
        const size_t block_end = (block + 1) * kBlock;
        const size_t step = std::min(k - done, block_end - pos);
        if (block * kBlock >= first && block_end <= end) {
          md5.add(reinterpret_cast<const unsigned char*>(sock_.data() + done), step);
          if (pos + step == block_end) {
            keep_digest(f, block, md5.digest());
            md5.reset();
          }
        }
        done += step;
      }
      sock_.take(k);
      at += k;
      n -= k;
    }
    if (digests && end > first) {
      std::vector<unsigned char> scratch;
      for (size_t block : {first / kBlock, (end - 1) / kBlock}) {
        if (block * kBlock >= first && (block + 1) * kBlock <= end) continue;
        Digest d{};
        if (!file_digest(f, block, &scratch, &d)) return false;
        keep_digest(f, block, d);
      }
    }
    return true;
  }

 private:
  LineSocket sock_;
};

// Sends `len` bytes of file `f` from `at`; with `md5`, read in whole blocks and each checked
// against its digest first.
bool send_range(Connection& c, File* f, size_t at, size_t len, std::vector<unsigned char>& out) {
  const size_t end = at + len;
  for (size_t pos = digests ? at / kBlock * kBlock : at; pos < end;) {
    const size_t want = std::min(out.size(), digests ? (end - pos + kBlock - 1) / kBlock * kBlock : end - pos);
    const ssize_t r = read_at(f->fd, out.data(), want, pos);
    if (r <= 0) return false;
    const size_t got = static_cast<size_t>(r);
    for (size_t b = 0; digests && b < got; b += kBlock) {
      Digest expected{};
      bool known;
      {
        std::lock_guard<std::mutex> g(files_lock);
        const auto it = f->digests.find((pos + b) / kBlock);
        known = it != f->digests.end();
        if (known) expected = it->second;
      }
      if (!known) continue;
      if (md5_of(out.data() + b, std::min(kBlock, got - b)) != expected) return false;
    }
    const size_t from = pos < at ? at - pos : 0;
    const size_t to = std::min(got, end - pos);
    if (to > from && !c.send_all(out.data() + from, to - from)) return false;
    pos += got;
  }
  return true;
}

void serve(int sock) {
  Connection c(sock);
  std::vector<unsigned char> out(1 << 20);
  std::string cmd;
  while (c.line(&cmd)) {
    const auto t = tokens(cmd);
    // 1 2 KEY WRM LEN TIMEOUT | 1 13 KEY WRM OFFSET LEN TIMEOUT | 1 8 KEY WRM OFFSET LEN TIMEOUT
    const bool store = t.size() == 6 && t[1] == "2";
    const bool write = t.size() == 7 && t[1] == "13";
    const bool load = t.size() == 7 && t[1] == "8";
    if (!store && !write && !load) {
      c.reply("-1\n");
      return;
    }
    const size_t len = std::strtoull(t[store ? 4 : 5].c_str(), nullptr, 10);
    size_t at = store ? 0 : std::strtoull(t[4].c_str(), nullptr, 10);
    File* f = file_of(t[2], store ? len : 0, store ? &at : nullptr);
    if (f == nullptr) {
      c.reply("-16\n");
      return;
    }
    if (load) {
      if (!c.reply("1 " + std::to_string(len) + "\n") || !send_range(c, f, at, len, out)) return;
      continue;
    }
    if (!c.reply("1\n") || !c.body_to(f, at, len)) return;
    if (sync_writes && fdatasync(f->fd) != 0) {
      c.reply("-16\n");
      return;
    }
    if (!c.reply("1 " + std::to_string(len) + "\n")) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 || (std::strcmp(argv[2], "fast") != 0 && std::strcmp(argv[2], "sync") != 0) ||
      (argc == 4 && std::strcmp(argv[3], "md5") != 0)) {
    std::fprintf(stderr, "usage: raw-file-depot DIR fast|sync [md5]\n");
    return 2;
  }
  dir = argv[1];
  sync_writes = std::strcmp(argv[2], "sync") == 0;
  digests = argc == 4;
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof addr;
  if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(ls, 64) != 0 ||
      getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
    std::fprintf(stderr, "raw-file-depot: cannot listen: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  for (;;) {
    const int s = accept(ls, nullptr, nullptr);
    if (s < 0) {
      // Errors of one connection (accept(2) says to retry on these), not of the listener.
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == ENETDOWN || errno == ENOPROTOOPT ||
          errno == EHOSTDOWN || errno == ENONET || errno == EHOSTUNREACH || errno == EOPNOTSUPP || errno == ENETUNREACH)
        continue;
      std::fprintf(stderr, "raw-file-depot: accept: %s\n", std::strerror(errno));
      return 1;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread(serve, s).detach();
  }
}

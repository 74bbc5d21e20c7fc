// The bulk phase of `npm run bench:depot` as a compiled client, in the shape of the C IBP performance
// clients a depot is usually measured with: CLIENTS threads, each with its own connection, one
// command at a time; thread i takes allocations i, i + CLIENTS, … and each allocation's blocks in
// turn. Its CPU cost per byte is close to the kernel's socket copy alone, so on a small machine the
// figures are the depot's, not the client's runtime's.
//
//   ibp-bulk-client HOST PORT MODE CLIENTS BLOCK_BYTES ALLOCATION_BYTES [COUNT MIN MAX SEED [READ_FRACTION]] < keys
//
// MODE: `store` (STORE, blocks in order), `reverse` (WRITE at each block's offset, last block
// first), `load` (LOAD, blocks in order; each block's stamp is checked) or `load-reverse` (LOAD,
// last block first). Standard input holds one line per allocation: the capability's key tokens as
// the command line carries them (`RID#KEY WRMKEY`). Block i holds its index as a little-endian
// double, then the byte (i * 37) & 255, as the TypeScript client writes it.
//
// `small-write` and `small-read` are the small random I/O of the same perf clients: COUNT WRITEs
// (or LOADs) in all, shared among the connections, each of MIN to MAX bytes (log-uniform) at a
// random offset of a random allocation. Connection i draws them from mulberry32 seeded with
// SEED ^ ((i + 1) * 0x9E3779B1), as the TypeScript client does, so both send the same commands.
// `small-mix` is the perf clients' third small phase ("Small Random R/W"): the same draws, then one
// more per command, a LOAD when it falls below READ_FRACTION (its last argument) and a WRITE
// otherwise. Its key lines hold both capabilities of an allocation: the write's tokens, a tab, the
// read's.
//
// Prints one JSON line: the phase's seconds (from the moment every connection is open), the
// client's own CPU seconds over the same span, the number of commands, how many were LOADs and, for
// the small modes, a digest of the commands drawn: per connection, FNV-1a over 32-bit words (slot,
// size, offset's low and high halves, 1 for a LOAD), the connections' digests XORed. Any refusal or short
// reply stops it with a message and exit status 1.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "line-socket.h"

namespace {

// Stops the whole process from any thread (`exit` from several threads at once is undefined).
[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "ibp-bulk-client: %s\n", message.c_str());
  std::fflush(stderr);
  _exit(1);
}

struct Settings {
  std::string host;
  std::string port;
  std::string mode;
  int clients = 0;
  size_t block = 0;
  size_t allocation = 0;
  // Small random I/O only.
  size_t count = 0, min_bytes = 0, max_bytes = 0;
  uint32_t seed = 0;
  double read_fraction = 0;  // small-mix only
  std::vector<std::string> keys;
  std::vector<std::string> read_keys;  // small-mix only: the read capability's tokens of keys[i]
};

// mulberry32: a small seeded generator; uniform in [0, 1).
class Mulberry {
 public:
  explicit Mulberry(uint32_t seed) : a_(seed) {}
  double next() {
    a_ += 0x6D2B79F5u;
    uint32_t t = a_;
    t = (t ^ (t >> 15)) * (t | 1u);
    t ^= t + (t ^ (t >> 7)) * (t | 61u);
    return static_cast<double>(t ^ (t >> 14)) / 4294967296.0;
  }

 private:
  uint32_t a_;
};

// Whole number in [min, max] from text, or stops the client naming `what`.
size_t number(const char* text, size_t min, size_t max, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || n < min || n > max) die("bad " + what + ": " + text);
  return static_cast<size_t>(n);
}

// One connection: blocking, Nagle off; replies read through one buffer. Any failure stops the client.
class Connection {
 public:
  explicit Connection(const Settings& s) : sock_(open_socket(s), 1 << 20) {}

  void send_all(const void* data, size_t n) {
    if (!sock_.send_all(data, n)) die(std::string("send: ") + std::strerror(errno));
  }

  // The next reply line, without its newline.
  std::string line() {
    std::string out;
    if (!sock_.line(&out)) fail("reply line");
    return out;
  }

  // Reads `n` body bytes; the first 8 go to `head` (fewer if n < 8).
  void body(size_t n, unsigned char head[8]) {
    size_t got = 0;
    while (got < n) {
      if (sock_.available() == 0 && !sock_.fill()) fail("body");
      const size_t k = std::min(n - got, sock_.available());
      for (size_t i = 0; i < k && got + i < 8; i++) head[got + i] = static_cast<unsigned char>(sock_.data()[i]);
      sock_.take(k);
      got += k;
    }
  }

 private:
  static int open_socket(const Settings& s) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(s.host.c_str(), s.port.c_str(), &hints, &res) != 0 || res == nullptr) die("cannot resolve " + s.host);
    const int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) die(std::string("connect: ") + std::strerror(errno));
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }

  [[noreturn]] static void fail(const char* what) {
    if (errno == 0) die("the depot closed the connection");
    if (errno == EMSGSIZE) die(std::string(what) + " too long");
    die(std::string("recv: ") + std::strerror(errno));
  }

  LineSocket sock_;
};

// A reply that must start with status 1; `count`, when set, must be its second token.
void expect_ok(const std::string& what, const std::string& line, long long count = -1) {
  const auto t = tokens(line);
  if (t.empty() || t[0] != "1") die(what + " refused: " + line);
  if (count < 0) return;
  char* end = nullptr;
  const long long got = t.size() < 2 ? -1 : std::strtoll(t[1].c_str(), &end, 10);
  if (t.size() < 2 || end == nullptr || *end != '\0' || got != count) die(what + " answered " + line);
}

// Formats a command line into `buf`; a line that does not fit stops the client.
template <typename... A>
size_t command(char (&buf)[512], const char* format, A... args) {
  const int n = std::snprintf(buf, sizeof buf, format, args...);
  if (n < 0 || static_cast<size_t>(n) >= sizeof buf) die("command line too long");
  return static_cast<size_t>(n);
}

std::vector<unsigned char> block_bytes(size_t index, size_t n) {
  std::vector<unsigned char> b(n, static_cast<unsigned char>((index * 37) & 0xff));
  const double stamp = static_cast<double>(index);
  std::memcpy(b.data(), &stamp, std::min<size_t>(8, n));  // little-endian on every host this runs on
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7 && argc != 11 && argc != 12)
    die("usage: ibp-bulk-client HOST PORT store|reverse|load|load-reverse|small-write|small-read|small-mix CLIENTS "
        "BLOCK_BYTES ALLOCATION_BYTES [COUNT MIN_BYTES MAX_BYTES SEED [READ_FRACTION]] < keys");
  Settings s;
  s.host = argv[1];
  s.port = argv[2];
  s.mode = argv[3];
  s.clients = static_cast<int>(number(argv[4], 1, 4096, "CLIENTS"));
  s.block = number(argv[5], 1, size_t{1} << 40, "BLOCK_BYTES");
  s.allocation = number(argv[6], 1, size_t{1} << 50, "ALLOCATION_BYTES");
  const bool loading = s.mode == "load" || s.mode == "load-reverse";
  const bool mix = s.mode == "small-mix";
  const bool small = s.mode == "small-write" || s.mode == "small-read" || mix;
  if (s.mode != "store" && s.mode != "reverse" && !loading && !small) die("unknown mode " + s.mode);
  if (s.allocation < s.block || s.allocation % s.block != 0) die("bad shape");
  const int wanted = mix ? 12 : small ? 11 : 7;
  if (argc != wanted)
    die(mix     ? s.mode + " needs COUNT MIN_BYTES MAX_BYTES SEED READ_FRACTION"
        : small ? s.mode + " needs COUNT MIN_BYTES MAX_BYTES SEED"
                : "too many arguments");
  if (small) {
    s.count = number(argv[7], 0, size_t{1} << 40, "COUNT");
    s.min_bytes = number(argv[8], 1, s.allocation, "MIN_BYTES");
    s.max_bytes = number(argv[9], s.min_bytes, s.allocation, "MAX_BYTES");
    s.seed = static_cast<uint32_t>(number(argv[10], 0, 0xFFFFFFFFu, "SEED"));
  }
  if (mix) {
    char* end = nullptr;
    errno = 0;
    s.read_fraction = std::strtod(argv[11], &end);
    if (errno != 0 || end == argv[11] || *end != '\0' || !(s.read_fraction >= 0 && s.read_fraction <= 1))
      die(std::string("READ_FRACTION must be a number from 0 to 1 (got \"") + argv[11] + "\")");
  }
  for (std::string line; std::getline(std::cin, line);)
    if (!line.empty()) s.keys.push_back(line);
  if (s.keys.empty()) die("no allocation keys on standard input");
  if (mix)
    for (std::string& k : s.keys) {
      const size_t tab = k.find('\t');
      if (tab == std::string::npos) die("small-mix needs WRITE_KEYS<tab>READ_KEYS on each line");
      s.read_keys.push_back(k.substr(tab + 1));
      k.resize(tab);
    }
  const size_t per_alloc = s.allocation / s.block;
  std::vector<std::vector<unsigned char>> data;
  if (!loading && !small)
    for (size_t i = 0; i < per_alloc; i++) data.push_back(block_bytes(i, s.block));
  const std::vector<unsigned char> small_bytes(s.max_bytes, 'w');

  std::mutex m;
  std::condition_variable cv;
  int ready = 0;
  bool go = false;
  std::chrono::steady_clock::time_point t0;
  rusage ru0{};
  std::atomic<size_t> loads{0};
  std::atomic<uint32_t> digest{0};
  std::vector<std::thread> threads;
  for (int ci = 0; ci < s.clients; ci++) {
    threads.emplace_back([&, ci] {
      Connection c(s);
      {
        std::unique_lock<std::mutex> lock(m);
        if (++ready == s.clients) {
          go = true;
          t0 = std::chrono::steady_clock::now();
          getrusage(RUSAGE_SELF, &ru0);
          cv.notify_all();
        }
        cv.wait(lock, [&] { return go; });
      }
      char cmd[512];
      if (small) {
        const size_t n = static_cast<size_t>(s.clients);
        const size_t ops = s.count / n + (static_cast<size_t>(ci) < s.count % n ? 1 : 0);
        Mulberry rng(s.seed ^ (static_cast<uint32_t>(ci + 1) * 0x9E3779B1u));
        const double lmin = std::log(static_cast<double>(s.min_bytes));
        const double lmax = std::log(static_cast<double>(s.max_bytes));
        uint32_t h = 2166136261u;
        const auto mix_in = [&h](uint64_t w) { h = (h ^ static_cast<uint32_t>(w)) * 16777619u; };
        for (size_t i = 0; i < ops; i++) {
          const size_t slot = std::min(s.keys.size() - 1, static_cast<size_t>(rng.next() * s.keys.size()));
          const double drawn = std::floor(std::exp(lmin + (lmax - lmin) * rng.next()));
          const size_t size = std::min(s.max_bytes, std::max(s.min_bytes, static_cast<size_t>(drawn)));
          const size_t offset = static_cast<size_t>(std::floor((s.allocation - size) * rng.next()));
          const bool read = mix ? rng.next() < s.read_fraction : s.mode == "small-read";
          const char* key = (mix && read ? s.read_keys[slot] : s.keys[slot]).c_str();
          mix_in(slot);
          mix_in(size);
          mix_in(offset & 0xFFFFFFFFu);
          mix_in(static_cast<uint64_t>(offset) >> 32);
          mix_in(read ? 1 : 0);
          if (read) {
            loads++;
            c.send_all(cmd, command(cmd, "1 8 %s %zu %zu 600\n", key, offset, size));
            expect_ok("LOAD", c.line(), static_cast<long long>(size));
            unsigned char head[8] = {0};
            c.body(size, head);
          } else {
            c.send_all(cmd, command(cmd, "1 13 %s %zu %zu 600\n", key, offset, size));
            expect_ok("go-ahead", c.line());
            c.send_all(small_bytes.data(), size);
            expect_ok("WRITE", c.line(), static_cast<long long>(size));
          }
        }
        digest ^= h;
        return;
      }
      for (size_t a = static_cast<size_t>(ci); a < s.keys.size(); a += static_cast<size_t>(s.clients)) {
        const char* key = s.keys[a].c_str();
        for (size_t k = 0; k < per_alloc; k++) {
          if (loading) {
            const size_t b = s.mode == "load" ? k : per_alloc - 1 - k;
            c.send_all(cmd, command(cmd, "1 8 %s %zu %zu 600\n", key, b * s.block, s.block));
            expect_ok("LOAD", c.line(), static_cast<long long>(s.block));
            unsigned char head[8] = {0};
            c.body(s.block, head);
            double stamp;
            std::memcpy(&stamp, head, 8);
            if (s.block >= 8 && stamp != static_cast<double>(b))
              die("allocation " + std::to_string(a) + " block " + std::to_string(b) + ": read back stamp " +
                  std::to_string(stamp));
            continue;
          }
          const size_t j = s.mode == "store" ? k : per_alloc - 1 - k;
          const size_t n = s.mode == "store" ? command(cmd, "1 2 %s %zu 600\n", key, s.block)
                                             : command(cmd, "1 13 %s %zu %zu 600\n", key, j * s.block, s.block);
          c.send_all(cmd, n);
          expect_ok("go-ahead", c.line());
          c.send_all(data[j].data(), s.block);
          expect_ok(s.mode == "store" ? "STORE" : "WRITE", c.line(), static_cast<long long>(s.block));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto secs = [](const timeval& a, const timeval& b) { return (a.tv_sec - b.tv_sec) + (a.tv_usec - b.tv_usec) / 1e6; };
  const double user = secs(ru.ru_utime, ru0.ru_utime);
  const double sys = secs(ru.ru_stime, ru0.ru_stime);
  const size_t commands = small ? s.count : s.keys.size() * per_alloc;
  const size_t loaded = small ? loads.load() : loading ? commands : 0;
  std::printf("{\"seconds\":%.6f,\"userS\":%.4f,\"sysS\":%.4f,\"commands\":%zu,\"loads\":%zu,\"digest\":%u}\n", seconds,
              user, sys, commands, loaded, static_cast<unsigned>(digest.load()));
  return 0;
}

// The least a depot can do for `npm run bench:depot`'s bulk shape: a C++ server that speaks just
// enough of the IBP wire for the compiled client (STORE, WRITE, LOAD) and keeps each allocation as a
// plain file, with no checksums, no metadata and no capability checks. A thread per connection,
// blocking calls: recv into a 1 MiB buffer and pwrite, or pread and send. With SYNC `sync`, every
// STORE and WRITE is fdatasynced before its reply, and a new file's directory entry is synced once,
// as the least a `--fsync safe` depot must do.
//
//   raw-file-depot DIR fast|sync
//
// Prints the port it listens on (127.0.0.1, a free one) and serves until killed. An allocation is
// named by its key token (the command's third token); its file is created under DIR at its first
// STORE or WRITE. A C depot that writes its allocations this plain way does all of this and more
// (block checksums, metadata). Not a ceiling for writes: a depot that prepares its files (as Anvil's
// warm files are) writes into pages already in memory, where this one pays a fresh page per 4 KiB.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
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

struct File {
  int fd = -1;
  size_t size = 0;  // bytes stored so far (where the next STORE goes)
};
std::mutex files_lock;
std::map<std::string, File> files;

// The file of allocation `key`, created if need be; its descriptor and the STORE offset, reserving
// `append` bytes past it.
int file_of(const std::string& key, size_t append, size_t* at) {
  std::lock_guard<std::mutex> g(files_lock);
  File& f = files[key];
  if (f.fd < 0) {
    std::string name;
    for (char c : key) name += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
    f.fd = open((dir + "/" + name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f.fd < 0) return -1;
    if (sync_writes) {
      // The new name, durable before the file's first acknowledgement (or the file is forgotten, so
      // that the next command tries again).
      const int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      const bool ok = d >= 0 && fsync(d) == 0;
      if (d >= 0) close(d);
      if (!ok) {
        close(f.fd);
        f.fd = -1;
        return -1;
      }
    }
  }
  if (at != nullptr) *at = f.size;
  f.size += append;
  return f.fd;
}

// A client's connection: bodies go from the socket's buffer straight into their file.
class Connection {
 public:
  explicit Connection(int fd) : sock_(fd, 1 << 20) {}

  bool reply(const std::string& line) { return sock_.send_all(line.data(), line.size()); }
  bool send_all(const void* data, size_t n) { return sock_.send_all(data, n); }
  bool line(std::string* out) { return sock_.line(out); }

  // Receives `n` body bytes into file `fd` at `at`, a buffer at a time.
  bool body_to(int fd, size_t at, size_t n) {
    while (n > 0) {
      if (sock_.available() == 0 && !sock_.fill()) return false;
      const size_t k = std::min(n, sock_.available());
      for (size_t done = 0; done < k;) {
        const ssize_t w = pwrite(fd, sock_.data() + done, k - done, static_cast<off_t>(at + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        done += static_cast<size_t>(w);
      }
      sock_.take(k);
      at += k;
      n -= k;
    }
    return true;
  }

 private:
  LineSocket sock_;
};

void serve(int sock) {
  Connection c(sock);
  std::vector<char> out(1 << 20);
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
    const int fd = file_of(t[2], store ? len : 0, store ? &at : nullptr);
    if (fd < 0) {
      c.reply("-16\n");
      return;
    }
    if (load) {
      if (!c.reply("1 " + std::to_string(len) + "\n")) return;
      for (size_t done = 0; done < len;) {
        const ssize_t r = pread(fd, out.data(), std::min(out.size(), len - done), static_cast<off_t>(at + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        if (!c.send_all(out.data(), static_cast<size_t>(r))) return;
        done += static_cast<size_t>(r);
      }
      continue;
    }
    if (!c.reply("1\n") || !c.body_to(fd, at, len)) return;
    if (sync_writes && fdatasync(fd) != 0) {
      c.reply("-16\n");
      return;
    }
    if (!c.reply("1 " + std::to_string(len) + "\n")) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[2], "fast") != 0 && std::strcmp(argv[2], "sync") != 0)) {
    std::fprintf(stderr, "usage: raw-file-depot DIR fast|sync\n");
    return 2;
  }
  dir = argv[1];
  sync_writes = std::strcmp(argv[2], "sync") == 0;
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

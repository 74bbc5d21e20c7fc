// A preloaded library for power-loss tests: it keeps, for every regular file under
// ANVIL_POWERLOSS_DIR, a copy of what the file held when its last successful fsync or fdatasync
// began, in ANVIL_POWERLOSS_SHADOW (one file per inode, named DEV-INODE-GENERATION). After the
// process is killed, a test puts every file back to that copy, and empties those never synced: the
// disk as a power cut leaves it when nothing written since a file's last sync reached it.
//
// - The copy is taken before the sync is called, under one lock that serializes syncs, and kept
//   only if the sync succeeds: bytes written while a sync runs count as unsynced, as they may be.
// - A file's length set by ftruncate, truncate or an open with O_TRUNC is metadata, which a
//   journaling file system (ext4) commits with the next sync of any file: it is applied to the
//   file's copy at the next successful sync of any file (a later copy of the file itself already
//   holds it). A copy the truncate lengthens is filled with zeros; a file never synced gets a copy
//   of zeros.
// - Names (creations, renames, removals) are taken as durable at once: directory syncs are not
//   judged. Nor are states in between (some unsynced pages written, others not), nor a failed sync
//   that drops pages (it is not a sync here, and the pages stay). Opens through glibc's fortified
//   entry points (__open_2, ...) or inside glibc (fopen) are not seen.
//
// A call the model does not cover (sync, syncfs, a waiting sync_file_range, msync, an O_SYNC or
// O_DSYNC open, a file system without inode generations) is counted in
// ANVIL_POWERLOSS_SHADOW/unmodelled so that the test can refuse to judge.
//
//   g++ -shared -fPIC -O1 -o power-loss.so power-loss.cc -ldl
//
// Built with -DPOWER_LOSS_CUT, it is instead the program that cuts the power afterwards:
//
//   power-loss-cut DIR SHADOW
//
// puts every regular file under DIR back to its copy in SHADOW, or empties it if it has none, and
// prints one JSON line: how many files were put back and how many emptied, each file the cut
// changed with the bytes it took back, and any calls outside the model that the library counted.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#ifndef POWER_LOSS_CUT
#include <map>
#include <string>

namespace {

char watched[PATH_MAX];
size_t watched_len = 0;  // 0: the library is off
const char* shadow = nullptr;
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
// Truncates since the last sync of any file, by copy path: the length last set.
std::map<std::string, off64_t>* truncated = nullptr;

template <typename F>
F real(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    fprintf(stderr, "power-loss: no %s to call\n", name);
    abort();
  }
  return reinterpret_cast<F>(f);
}

void note_unmodelled(const char* what) {
  if (shadow == nullptr) return;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/unmodelled", shadow);
  static auto open_file = real<int (*)(const char*, int, ...)>("open");
  const int fd = open_file(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  char line[128];
  const int n = snprintf(line, sizeof line, "%s\n", what);
  if (n > 0) (void)!write(fd, line, static_cast<size_t>(n));
  close(fd);
}

// The path of the copy of the file open as `fd`, if it is a regular file under the watched
// directory; empty otherwise.
std::string copy_path(int fd) {
  char link[64];
  char path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return "";
  path[n] = '\0';
  if (strncmp(path, watched, watched_len) != 0 || path[watched_len] != '/') return "";
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return "";
  int generation = 0;
  // Without generations a reused inode number would take a removed file's copy.
  if (ioctl(fd, FS_IOC_GETVERSION, &generation) != 0) note_unmodelled("no inode generation");
  char dst[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/%llu-%llu-%d", shadow, static_cast<unsigned long long>(st.st_dev),
           static_cast<unsigned long long>(st.st_ino), generation);
  return dst;
}

// Copies the file open as `fd` to `tmp`; false if it could not.
bool take_copy(int fd, const std::string& tmp) {
  static auto open_file = real<int (*)(const char*, int, ...)>("open");
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  // Through /proc: the descriptor may be write-only.
  const int in = open_file(link, O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  const int out = open_file(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = out >= 0;
  static char buf[1 << 16];
  while (ok) {
    const ssize_t got = read(in, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ok = got == 0;
      break;
    }
    for (ssize_t done = 0; done < got;) {
      const ssize_t put = write(out, buf + done, static_cast<size_t>(got - done));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) {
        ok = false;
        break;
      }
      done += put;
    }
  }
  close(in);
  if (out >= 0) close(out);
  return ok;
}

template <typename F>
int synced(int fd, F sync) {
  if (watched_len == 0) return sync(fd);
  pthread_mutex_lock(&lock);
  const std::string dst = copy_path(fd);
  const std::string tmp = dst + ".tmp";
  // What the file holds as the sync begins: all that this sync can be counted on to keep.
  const bool copied = !dst.empty() && take_copy(fd, tmp);
  const int r = sync(fd);
  const int saved = errno;
  if (r == 0) {
    if (copied && rename(tmp.c_str(), dst.c_str()) == 0) {
      truncated->erase(dst);  // the copy holds its length
    } else if (!dst.empty()) {
      unlink(tmp.c_str());
      note_unmodelled("copy: failed");
    }
    // The file system's journal commit carried every other file's new length along.
    static auto resize = real<int (*)(int, off64_t)>("ftruncate64");
    static auto open_file = real<int (*)(const char*, int, ...)>("open");
    for (const auto& [copy, length] : *truncated) {
      const int c = open_file(copy.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      if (c < 0 || resize(c, length) != 0) note_unmodelled("truncate: cannot apply");
      if (c >= 0) close(c);
    }
    truncated->clear();
  }
  if (r != 0 && !dst.empty()) unlink(tmp.c_str());  // also a partial copy
  pthread_mutex_unlock(&lock);
  errno = saved;
  return r;
}

// Runs `call` (a truncate of some kind) and, if it succeeds, notes the new length of the file it
// names through `fd_of` (see the header); under the lock, so that no sync comes in between.
template <typename Call, typename FdOf>
int truncating(Call call, FdOf fd_of, off64_t length) {
  if (watched_len == 0) return call();
  pthread_mutex_lock(&lock);
  const int r = call();
  const int saved = errno;
  if (r == 0) {
    bool opened = false;
    const int fd = fd_of(&opened);
    if (fd >= 0) {
      const std::string dst = copy_path(fd);
      if (!dst.empty()) (*truncated)[dst] = length;
      if (opened) close(fd);
    } else {
      note_unmodelled("truncate: cannot reopen");
    }
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return r;
}

// An open of `path` with `flags`, by `call`: a truncating one is noted as a truncate to 0.
template <typename Call>
int opening(Call call, int flags) {
  if (watched_len == 0) return call();
  if ((flags & (O_SYNC | O_DSYNC)) != 0) note_unmodelled("O_SYNC or O_DSYNC open");
  // (Linux truncates even with O_RDONLY.)
  if ((flags & O_TRUNC) == 0) return call();
  int fd = -1;
  truncating(
      [&] {
        fd = call();
        return fd < 0 ? -1 : 0;
      },
      [&](bool*) { return fd; }, 0);
  return fd;
}

// A truncate of `path` by `call`: noted through a descriptor of its own, so that the copy is found
// as for ftruncate.
template <typename Call>
int truncating_by_name(const char* path, Call call, off64_t length) {
  static auto open_file = real<int (*)(const char*, int, ...)>("open");
  return truncating(
      call,
      [&](bool* opened) {
        *opened = true;
        return open_file(path, O_RDONLY | O_CLOEXEC);
      },
      length);
}

// The mode argument of an open that creates.
#define MODE_OF(flags)                                            \
  mode_t mode = 0;                                                \
  if (((flags) & O_CREAT) != 0 || ((flags) & O_TMPFILE) == O_TMPFILE) { \
    va_list ap;                                                   \
    va_start(ap, flags);                                          \
    mode = static_cast<mode_t>(va_arg(ap, int));                  \
    va_end(ap);                                                   \
  }

__attribute__((constructor)) void start() {
  const char* dir = getenv("ANVIL_POWERLOSS_DIR");
  shadow = getenv("ANVIL_POWERLOSS_SHADOW");
  if (dir == nullptr || shadow == nullptr || *dir == '\0' || *shadow == '\0') return;
  // As /proc/self/fd shows paths: without symbolic links.
  if (realpath(dir, watched) == nullptr) {
    fprintf(stderr, "power-loss: cannot resolve %s\n", dir);
    abort();
  }
  truncated = new std::map<std::string, off64_t>();
  watched_len = strlen(watched);
}

}  // namespace

extern "C" {

int fsync(int fd) {
  static auto next = real<int (*)(int)>("fsync");
  return synced(fd, next);
}

int fdatasync(int fd) {
  static auto next = real<int (*)(int)>("fdatasync");
  return synced(fd, next);
}

int open(const char* path, int flags, ...) {
  static auto next = real<int (*)(const char*, int, ...)>("open");
  MODE_OF(flags)
  return opening([&] { return next(path, flags, mode); }, flags);
}

int open64(const char* path, int flags, ...) {
  static auto next = real<int (*)(const char*, int, ...)>("open64");
  MODE_OF(flags)
  return opening([&] { return next(path, flags, mode); }, flags);
}

int openat(int dirfd, const char* path, int flags, ...) {
  static auto next = real<int (*)(int, const char*, int, ...)>("openat");
  MODE_OF(flags)
  return opening([&] { return next(dirfd, path, flags, mode); }, flags);
}

int openat64(int dirfd, const char* path, int flags, ...) {
  static auto next = real<int (*)(int, const char*, int, ...)>("openat64");
  MODE_OF(flags)
  return opening([&] { return next(dirfd, path, flags, mode); }, flags);
}

int creat(const char* path, mode_t mode) {
  static auto next = real<int (*)(const char*, mode_t)>("creat");
  return opening([&] { return next(path, mode); }, O_CREAT | O_WRONLY | O_TRUNC);
}

int creat64(const char* path, mode_t mode) {
  static auto next = real<int (*)(const char*, mode_t)>("creat64");
  return opening([&] { return next(path, mode); }, O_CREAT | O_WRONLY | O_TRUNC);
}

int ftruncate(int fd, off_t length) {
  static auto next = real<int (*)(int, off_t)>("ftruncate");
  return truncating([&] { return next(fd, length); }, [&](bool*) { return fd; }, length);
}

int ftruncate64(int fd, off64_t length) {
  static auto next = real<int (*)(int, off64_t)>("ftruncate64");
  return truncating([&] { return next(fd, length); }, [&](bool*) { return fd; }, length);
}

int truncate(const char* path, off_t length) {
  static auto next = real<int (*)(const char*, off_t)>("truncate");
  return truncating_by_name(path, [&] { return next(path, length); }, length);
}

int truncate64(const char* path, off64_t length) {
  static auto next = real<int (*)(const char*, off64_t)>("truncate64");
  return truncating_by_name(path, [&] { return next(path, length); }, length);
}

void sync(void) {
  static auto next = real<void (*)(void)>("sync");
  note_unmodelled("sync");
  next();
}

int syncfs(int fd) {
  static auto next = real<int (*)(int)>("syncfs");
  note_unmodelled("syncfs");
  return next(fd);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
  static auto next = real<int (*)(int, off64_t, off64_t, unsigned int)>("sync_file_range");
  // Starting write-back alone makes nothing durable: only a wait for it is outside the model.
  if ((flags & ~SYNC_FILE_RANGE_WRITE) != 0) note_unmodelled("sync_file_range");
  return next(fd, offset, nbytes, flags);
}

int msync(void* addr, size_t length, int flags) {
  static auto next = real<int (*)(void*, size_t, int)>("msync");
  note_unmodelled("msync");
  return next(addr, length, flags);
}

}  // extern "C"

#else  // POWER_LOSS_CUT
#include <ftw.h>

#include <string>
#include <vector>

namespace {

const char* shadow_dir = nullptr;
long put_back = 0;
long emptied = 0;
std::string changed;  // JSON: {"path":..., "bytes":...} of each file the cut changed
bool failed = false;

// The whole content of the file open as `fd`; false if it cannot be read.
bool slurp(int fd, std::vector<char>* out) {
  char buf[1 << 16];
  for (off_t at = 0;;) {
    const ssize_t got = pread(fd, buf, sizeof buf, at);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return false;
    if (got == 0) return true;
    out->insert(out->end(), buf, buf + got);
    at += got;
  }
}

int cut(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
  const int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "power-loss-cut: cannot open %s\n", path);
    failed = true;
    return 0;
  }
  int generation = 0;
  (void)ioctl(fd, FS_IOC_GETVERSION, &generation);
  char copy[PATH_MAX];
  snprintf(copy, sizeof copy, "%s/%llu-%llu-%d", shadow_dir, static_cast<unsigned long long>(st->st_dev),
           static_cast<unsigned long long>(st->st_ino), generation);
  std::vector<char> now;
  std::vector<char> then;
  const int in = open(copy, O_RDONLY | O_CLOEXEC);
  if (!slurp(fd, &now) || (in >= 0 && !slurp(in, &then))) failed = true;
  if (in >= 0) close(in);
  // What the cut takes away: bytes that differ, and those past the shorter of the two.
  long long differ = 0;
  const size_t common = std::min(now.size(), then.size());
  for (size_t i = 0; i < common; i++) differ += now[i] != then[i] ? 1 : 0;
  differ += static_cast<long long>(std::max(now.size(), then.size()) - common);
  if (differ > 0) {
    if (!changed.empty()) changed += ",";
    changed += "{\"path\":\"";
    for (const char* c = path; *c != '\0'; c++) {
      if (*c == '"' || *c == '\\') changed += '\\';
      changed += *c;
    }
    changed += "\",\"bytes\":" + std::to_string(differ) + "}";
  }
  if (ftruncate(fd, 0) != 0) failed = true;
  if (in < 0) {
    emptied++;
  } else {
    for (size_t at = 0; at < then.size();) {
      const ssize_t put = pwrite(fd, then.data() + at, then.size() - at, static_cast<off_t>(at));
      if (put <= 0) {
        failed = true;
        break;
      }
      at += static_cast<size_t>(put);
    }
    put_back++;
  }
  if (fsync(fd) != 0) failed = true;
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: power-loss-cut DIR SHADOW\n");
    return 2;
  }
  shadow_dir = argv[2];
  if (nftw(argv[1], cut, 32, FTW_PHYS) != 0) {
    fprintf(stderr, "power-loss-cut: cannot walk %s\n", argv[1]);
    return 1;
  }
  std::string unmodelled;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/unmodelled", shadow_dir);
  if (FILE* f = fopen(path, "r")) {
    char line[128];
    while (fgets(line, sizeof line, f) != nullptr) {
      line[strcspn(line, "\n")] = '\0';
      if (!unmodelled.empty()) unmodelled += ",";
      unmodelled += "\"" + std::string(line) + "\"";
    }
    fclose(f);
  }
  printf("{\"putBack\":%ld,\"emptied\":%ld,\"changed\":[%s],\"unmodelled\":[%s]}\n", put_back, emptied, changed.c_str(),
         unmodelled.c_str());
  return failed ? 1 : 0;
}
#endif  // POWER_LOSS_CUT

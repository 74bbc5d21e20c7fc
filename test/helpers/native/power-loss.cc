// A preloaded library for power-loss tests: it keeps, for every regular file under
// ANVIL_POWERLOSS_DIR, a copy of what the file held at its last successful fsync or fdatasync, in
// ANVIL_POWERLOSS_SHADOW (one file per inode, named DEV-INODE-GENERATION). After the process is
// killed, a test puts every file back to that copy, and empties those never synced: the disk as a
// power cut leaves it when nothing written since a file's last sync reached it. (Names are taken
// as durable at once; only contents are put back.)
//
// A file's length set by ftruncate or truncate is metadata, which a journaling file system (ext4)
// commits with the next sync of any file: so a truncate is applied to the file's copy at the next
// successful sync of any file (a copy taken later, of the file itself, already holds it). A copy
// the truncate lengthens is filled with zeros; a file never synced gets a copy of zeros.
//
// Syncs are serialized, each copy taken right after its sync under one lock, so a later copy of a
// file is never older than an earlier one. A copy may hold bytes written after the sync it follows:
// those could have reached the disk anyway, so the test errs on the lenient side, never the strict.
//
// A call the model does not cover (sync, syncfs, sync_file_range with a wait flag, msync) is
// counted in ANVIL_POWERLOSS_SHADOW/unmodelled so that the test can refuse to judge.
//
//   g++ -shared -fPIC -O1 -o power-loss.so power-loss.cc -ldl
//
// Built with -DPOWER_LOSS_CUT, it is instead the program that cuts the power afterwards:
//
//   power-loss-cut DIR SHADOW
//
// puts every regular file under DIR back to its copy in SHADOW, or empties it if it has none, and
// prints one JSON line: how many files were put back and how many emptied, and any calls outside
// the model that the library counted.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#ifndef POWER_LOSS_CUT
#include <map>
#include <string>

namespace {

const char* watched = nullptr;
size_t watched_len = 0;
const char* shadow = nullptr;
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
// Truncates since the last sync of any file, by copy path: the length last set.
std::map<std::string, off64_t>* truncated = nullptr;

template <typename F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

void note_unmodelled(const char* what) {
  if (shadow == nullptr) return;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/unmodelled", shadow);
  const int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
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
  (void)ioctl(fd, FS_IOC_GETVERSION, &generation);
  char dst[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/%llu-%llu-%d", shadow, static_cast<unsigned long long>(st.st_dev),
           static_cast<unsigned long long>(st.st_ino), generation);
  return dst;
}

// Copies the file open as `fd` to its shadow `dst`. Errors leave the previous copy: the test then
// sees an older state, and says what it lost.
void take_copy(int fd, const std::string& dst) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  // Through /proc: the descriptor may be write-only.
  const int in = open(link, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    note_unmodelled("copy: cannot reopen");
    return;
  }
  const std::string tmp = dst + ".tmp";
  const int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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
  if (ok) ok = rename(tmp.c_str(), dst.c_str()) == 0;
  if (!ok) {
    unlink(tmp.c_str());
    note_unmodelled("copy: failed");
  }
}

template <typename F>
int synced(int fd, F sync) {
  if (watched == nullptr) return sync(fd);
  pthread_mutex_lock(&lock);
  const int r = sync(fd);
  const int saved = errno;
  if (r == 0) {
    const std::string dst = copy_path(fd);
    if (!dst.empty()) {
      take_copy(fd, dst);
      truncated->erase(dst);  // the copy holds its length
    }
    // The file system's journal commit carried every other file's new length along.
    for (const auto& [copy, length] : *truncated) {
      const int c = open(copy.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      // The next one in line, not this library's (which would take the lock again).
      static auto resize = real<int (*)(int, off64_t)>("ftruncate64");
      if (c < 0 || resize(c, length) != 0) note_unmodelled("truncate: cannot apply");
      if (c >= 0) close(c);
    }
    truncated->clear();
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return r;
}

// Notes a successful truncate of the file open as `fd` to `length` (see the header).
void note_truncate(int fd, off64_t length) {
  pthread_mutex_lock(&lock);
  const std::string dst = copy_path(fd);
  if (!dst.empty()) (*truncated)[dst] = length;
  pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) void start() {
  watched = getenv("ANVIL_POWERLOSS_DIR");
  shadow = getenv("ANVIL_POWERLOSS_SHADOW");
  if (watched == nullptr || shadow == nullptr || *watched == '\0' || *shadow == '\0') {
    watched = nullptr;
    return;
  }
  watched_len = strlen(watched);
  truncated = new std::map<std::string, off64_t>();
  while (watched_len > 1 && watched[watched_len - 1] == '/') watched_len--;
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

int ftruncate(int fd, off_t length) {
  static auto next = real<int (*)(int, off_t)>("ftruncate");
  const int r = next(fd, length);
  if (r == 0 && watched != nullptr) {
    const int saved = errno;
    note_truncate(fd, length);
    errno = saved;
  }
  return r;
}

int ftruncate64(int fd, off64_t length) {
  static auto next = real<int (*)(int, off64_t)>("ftruncate64");
  const int r = next(fd, length);
  if (r == 0 && watched != nullptr) {
    const int saved = errno;
    note_truncate(fd, length);
    errno = saved;
  }
  return r;
}

// By name: through a descriptor of its own, so that the copy is found as for ftruncate.
int truncate(const char* path, off_t length) {
  static auto next = real<int (*)(const char*, off_t)>("truncate");
  const int r = next(path, length);
  if (r == 0 && watched != nullptr) {
    const int saved = errno;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      note_truncate(fd, length);
      close(fd);
    } else note_unmodelled("truncate: cannot reopen");
    errno = saved;
  }
  return r;
}

int truncate64(const char* path, off64_t length) {
  static auto next = real<int (*)(const char*, off64_t)>("truncate64");
  const int r = next(path, length);
  if (r == 0 && watched != nullptr) {
    const int saved = errno;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      note_truncate(fd, length);
      close(fd);
    } else note_unmodelled("truncate: cannot reopen");
    errno = saved;
  }
  return r;
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

namespace {

const char* shadow_dir = nullptr;
long put_back = 0;
long emptied = 0;
bool failed = false;

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
  const int in = open(copy, O_RDONLY | O_CLOEXEC);
  if (ftruncate(fd, 0) != 0) failed = true;
  if (in < 0) {
    emptied++;
  } else {
    static char buf[1 << 16];
    off_t at = 0;
    for (;;) {
      const ssize_t got = read(in, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0) failed = true;
        break;
      }
      if (pwrite(fd, buf, static_cast<size_t>(got), at) != got) failed = true;
      at += got;
    }
    close(in);
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
  printf("{\"putBack\":%ld,\"emptied\":%ld,\"unmodelled\":[%s]}\n", put_back, emptied, unmodelled.c_str());
  return failed ? 1 : 0;
}
#endif  // POWER_LOSS_CUT

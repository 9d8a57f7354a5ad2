#include "common/secret.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/file_io.h"

namespace cairn {

StatusOr<std::shared_ptr<const Secret>> Secret::Generate() {
  std::string bytes(kMinBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size())) != 1) {
    return Internal("cannot generate a secret: OpenSSL's random generator failed");
  }
  return FromBytes(std::move(bytes));
}

StatusOr<std::shared_ptr<const Secret>> Secret::FromBytes(std::string bytes) {
  if (bytes.size() < kMinBytes) {
    return InvalidArgument("a secret needs at least " + std::to_string(kMinBytes) + " bytes, got " +
                           std::to_string(bytes.size()));
  }
  return std::shared_ptr<const Secret>(new Secret(std::move(bytes)));
}

StatusOr<std::shared_ptr<const Secret>> Secret::FromFile(const std::string& path) {
  const std::string fix = " (create one with `cairn secret --out " + path + "`)";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    return FailedPrecondition(ErrnoStatus(err, "secret file '" + path + "'").message() +
                              (err == ENOENT ? fix : std::string()));
  }
  struct stat st {};
  std::string bytes;
  Status s;
  if (::fstat(fd, &st) != 0) {
    s = ErrnoStatus(errno, "secret file '" + path + "'");
  } else if (!S_ISREG(st.st_mode)) {
    s = FailedPrecondition("secret file '" + path + "' is not a regular file");
  } else if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    s = FailedPrecondition("secret file '" + path + "' has mode " + mode +
                           ": group or others may read or write it; run `chmod 600 " + path + "`");
  } else {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        s = ErrnoStatus(errno, "reading secret file '" + path + "'");
        break;
      }
      if (n == 0) break;
      bytes.append(buf, static_cast<size_t>(n));
      if (bytes.size() > (1u << 20)) {
        s = FailedPrecondition("secret file '" + path + "' is over 1 MiB: is it the right file?");
        break;
      }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
  }
  ::close(fd);
  if (s.ok()) {
    while (!bytes.empty() && (bytes.back() == '\n' || bytes.back() == '\r' || bytes.back() == ' ')) bytes.pop_back();
    if (bytes.size() < kMinBytes) {
      s = FailedPrecondition("secret file '" + path + "' holds " + std::to_string(bytes.size()) +
                             " bytes; a secret needs at least " + std::to_string(kMinBytes) + fix);
    }
  }
  if (!s.ok()) {
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return s;
  }
  return FromBytes(std::move(bytes));
}

Secret::~Secret() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

Status WriteSecretFile(const std::string& path) {
  unsigned char raw[Secret::kMinBytes];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return Internal("cannot generate a secret: OpenSSL's random generator failed");
  static const char kHex[] = "0123456789abcdef";
  std::string text;
  for (unsigned char b : raw) {
    text += kHex[b >> 4];
    text += kHex[b & 15];
  }
  text += '\n';
  OPENSSL_cleanse(raw, sizeof(raw));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoStatus(errno, "cannot create secret file '" + path + "'");
  Status s;
  // The mode asked for is filtered by the umask; make sure it is 0600.
  if (::fchmod(fd, 0600) != 0) s = ErrnoStatus(errno, "chmod 600 '" + path + "'");
  size_t done = 0;
  while (s.ok() && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = ErrnoStatus(errno, "writing secret file '" + path + "'");
    else done += static_cast<size_t>(n);
  }
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoStatus(errno, "syncing secret file '" + path + "'");
  ::close(fd);
  OPENSSL_cleanse(text.data(), text.size());
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

}  // namespace cairn

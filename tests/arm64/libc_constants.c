/*
 * Prints, as one JSON object, the values lib/sources/libc.ts hard-codes, as the C headers
 * of the target define them: open(2) flags, termios bits and B-codes, ioctl requests,
 * poll events, errno values, and the struct termios / struct pollfd layout.
 *
 * scripts/test_arm64.sh builds it with aarch64-linux-gnu-gcc (when installed), runs it
 * under qemu-aarch64 and compares with tests/arm64/libc_constants.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>

#define SHOW(name, value) printf("  \"%s\": %lld,\n", name, (long long)(value))
#define VALUE(name) SHOW(#name, name)

int main(void) {
  printf("{\n");
  VALUE(O_RDWR), VALUE(O_NOCTTY), VALUE(O_NONBLOCK), VALUE(O_CLOEXEC);
  VALUE(IXANY), VALUE(IXOFF);
  VALUE(CBAUD), VALUE(CSIZE), VALUE(CS5), VALUE(CS6), VALUE(CS7), VALUE(CS8);
  VALUE(CSTOPB), VALUE(CREAD), VALUE(PARENB), VALUE(PARODD), VALUE(CLOCAL);
  VALUE(CMSPAR), VALUE(CRTSCTS);
  VALUE(B0), VALUE(B50), VALUE(B75), VALUE(B110), VALUE(B134), VALUE(B150);
  VALUE(B200), VALUE(B300), VALUE(B600), VALUE(B1200), VALUE(B1800), VALUE(B2400);
  VALUE(B4800), VALUE(B9600), VALUE(B19200), VALUE(B38400), VALUE(B57600);
  VALUE(B115200), VALUE(B230400), VALUE(B460800);
  VALUE(TCSANOW), VALUE(TCIFLUSH), VALUE(TCIOFLUSH), VALUE(VTIME), VALUE(VMIN);
  VALUE(TIOCEXCL), VALUE(TIOCNXCL), VALUE(TIOCGEXCL);
  VALUE(POLLIN), VALUE(POLLOUT), VALUE(POLLERR), VALUE(POLLHUP), VALUE(POLLNVAL);
  VALUE(EPERM), VALUE(ENOENT), VALUE(EINTR), VALUE(EIO), VALUE(ENXIO), VALUE(EBADF);
  VALUE(EAGAIN), VALUE(ENOMEM), VALUE(EACCES), VALUE(EBUSY), VALUE(ENODEV);
  VALUE(ENOTDIR), VALUE(EISDIR), VALUE(EINVAL), VALUE(EMFILE), VALUE(ENOTTY);
  VALUE(EROFS), VALUE(ENAMETOOLONG), VALUE(ELOOP);
  SHOW("sizeof termios", sizeof(struct termios));
  SHOW("termios.c_iflag", offsetof(struct termios, c_iflag));
  SHOW("termios.c_cflag", offsetof(struct termios, c_cflag));
  SHOW("termios.c_cc", offsetof(struct termios, c_cc));
  SHOW("sizeof pollfd", sizeof(struct pollfd));
  SHOW("pollfd.fd", offsetof(struct pollfd, fd));
  SHOW("pollfd.events", offsetof(struct pollfd, events));
  SHOW("pollfd.revents", offsetof(struct pollfd, revents));
  SHOW("sizeof tcflag_t", sizeof(tcflag_t));
  SHOW("sizeof speed_t", sizeof(speed_t));
  printf("  \"__end\": 0\n}\n");
  return 0;
}

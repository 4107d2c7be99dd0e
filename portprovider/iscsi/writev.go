package iscsi

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIOV is the most iovecs one writev takes (IOV_MAX on Linux).
const maxIOV = 1024

// writeNoWait writes as much of bufs as the socket takes without waiting
// and returns the rest (empty when everything went). It never parks: a
// full socket buffer (EAGAIN) just ends the attempt. c.wmu is held.
func (c *conn) writeNoWait(bufs net.Buffers) (net.Buffers, error) {
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			iov := c.w.iov[:0]
			want := 0
			for _, b := range bufs {
				if len(iov) == maxIOV {
					break
				}
				if len(b) == 0 {
					continue
				}
				iov = append(iov, unix.Iovec{Base: &b[0]})
				iov[len(iov)-1].SetLen(len(b))
				want += len(b)
			}
			c.w.iov = iov
			if len(iov) == 0 {
				bufs = nil
				break
			}
			n, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			clear(iov) // the iovecs must not keep the data alive
			switch {
			case errno == unix.EINTR:
				continue
			case errno == unix.EAGAIN:
				return true
			case errno != 0:
				werr = errno
				return true
			}
			consume(&bufs, int(n))
			if int(n) < want {
				return true // the socket buffer is full
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		err = errors.Join(net.ErrClosed, err)
	}
	return bufs, err
}

// consume drops the first n bytes of v.
func consume(v *net.Buffers, n int) {
	for len(*v) > 0 {
		b := (*v)[0]
		if len(b) > n {
			(*v)[0] = b[n:]
			return
		}
		n -= len(b)
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}

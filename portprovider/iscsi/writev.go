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
	w := &c.w
	w.nwBufs, w.nwErr = bufs, nil
	err := c.raw.Write(w.writev)
	bufs, werr := w.nwBufs, w.nwErr
	w.nwBufs, w.nwErr = nil, nil
	if err == nil {
		err = werr
	}
	if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		err = errors.Join(net.ErrClosed, err)
	}
	return bufs, err
}

// writevOnce is writeNoWait's syscall.RawConn callback: it writes
// c.w.nwBufs until they are gone or the socket is full and always reports
// done, so the poller never parks.
func (c *conn) writevOnce(fd uintptr) bool {
	w := &c.w
	for len(w.nwBufs) > 0 {
		iov := w.iov[:0]
		want := 0
		for _, b := range w.nwBufs {
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
		w.iov = iov
		if len(iov) == 0 {
			w.nwBufs = nil
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
			w.nwErr = errno
			return true
		}
		consume(&w.nwBufs, int(n))
		if int(n) < want {
			return true // the socket buffer is full
		}
	}
	return true
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

//go:build linux || darwin || freebsd

package proxy

import (
	"net"
	"syscall"
)

// idleClean reports whether an idle connection to an app is still open
// and has sent nothing since its last response, with one non-blocking
// peek (no data waiting: EAGAIN). Bytes that arrived while it was idle
// were answers to nobody: they must not become the next request's.
func idleClean(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	clean := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		clean = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait
	})
	return err == nil && clean
}

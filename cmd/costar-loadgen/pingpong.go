package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// pingPongServe answers each connection: read -req bytes, write -resp
// bytes, until the peer closes. It serves until ctx ends.
func pingPongServe(ctx context.Context, o options, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(o.ppServe)
	if err != nil {
		return fmt.Errorf("-pingpong-serve %q: %w", o.ppServe, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-pingpong-serve %q: loopback addresses only", o.ppServe)
	}
	ln, err := net.Listen("tcp", o.ppServe)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Fprintln(stderr, "costar-loadgen: ping-pong serving on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer c.Close()
			req, resp := make([]byte, o.req), make([]byte, o.resp)
			for {
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}

// pingPongClient runs one request at a time for -duration and reports the
// round trips as a RESULT line (each round trip one "op").
func pingPongClient(ctx context.Context, o options, stdout io.Writer) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := d.DialContext(dctx, "tcp", o.ppAddr)
	cancel()
	if err != nil {
		return fmt.Errorf("dial %s: %w", o.ppAddr, err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	_ = c.SetDeadline(time.Now().Add(o.duration + 10*time.Second))
	req, resp := make([]byte, o.req), make([]byte, o.resp)
	h := &hist{}
	var n uint64
	start := time.Now()
	end := start.Add(o.duration)
	for t := start; t.Before(end) && ctx.Err() == nil; {
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		now := time.Now()
		h.add(now.Sub(t))
		t = now
		n++
	}
	var s summary
	s.merge(h)
	fmt.Fprintln(stdout, result(n, n, 0, 0, time.Since(start), o.resp, &s))
	return nil
}

package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/costar-project/costar/api"
)

// CancelWait bounds how long Stream waits, once its context is cancelled,
// for the daemon to report that the operation was undone.
const CancelWait = 2 * time.Minute

// ErrNoOutcome: the stream ended (or the wait after a cancel ran out)
// before the daemon said how the call ended.
var ErrNoOutcome = errors.New("stmfd did not report how the call ended")

// Stream invokes a long call asking for streamed progress: on gets each
// progress event in order, resp the result. When ctx is cancelled (Ctrl-C)
// the connection's writing half is closed, which makes stmfd cancel and
// undo the operation, and Stream keeps reading (at most CancelWait) for
// the outcome: an *api.Error with code CANCELLED, or the result when the
// operation had already finished. A daemon that does not stream answers
// with one document, which is decoded as Call does.
func (c *Client) Stream(ctx context.Context, method string, req, resp any, on func(api.Progress)) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", method, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	defer conn.Close()
	// Cancel by closing our half only: stmfd sees the end of the request
	// stream, cancels, and still writes the outcome.
	stop := context.AfterFunc(ctx, func() {
		if uc, ok := conn.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(CancelWait))
	})
	defer stop()

	hreq, err := http.NewRequest(http.MethodPost, "http://stmfd/v1/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", api.StreamContentType)
	hreq.Close = true
	if err := hreq.Write(conn); err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	hresp, err := http.ReadResponse(bufio.NewReader(conn), hreq)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK || !strings.HasPrefix(hresp.Header.Get("Content-Type"), api.StreamContentType) {
		data, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponse))
		if err != nil {
			return fmt.Errorf("reading %s response: %w", method, err)
		}
		return decodeAnswer(method, hresp.StatusCode, data, resp)
	}
	dec := json.NewDecoder(io.LimitReader(hresp.Body, maxResponse))
	for {
		var ev api.StreamEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w after the cancel (%w); check the configuration with list-lu", method, ErrNoOutcome, err)
			}
			return fmt.Errorf("%s: %w: %w", method, ErrNoOutcome, err)
		}
		switch {
		case ev.Error != nil:
			return ev.Error
		case ev.Result != nil:
			if resp == nil {
				return nil
			}
			if err := json.Unmarshal(ev.Result, resp); err != nil {
				return fmt.Errorf("decoding %s response: %w", method, err)
			}
			return nil
		case ev.Progress != nil && on != nil:
			on(*ev.Progress)
		}
	}
}

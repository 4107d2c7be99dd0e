// Package progress carries progress reports of long management operations
// (create-lu with preallocation, zfs commands, clone-lu) from the layer
// doing the work to the management API, which streams them to the client.
// The reporter travels in the operation's context, so the layers between
// (LU provider, stores) need no extra parameter and stay unaware of the API.
package progress

import "context"

// Event is one report: the operation entered Phase, or made progress in
// it. Done and Total count bytes; Total 0 means the amount is unknown.
type Event struct {
	Phase string
	Done  uint64
	Total uint64
}

// Func receives events. It must not block: it runs on the operation's
// goroutine.
type Func func(Event)

type key struct{}

// With returns ctx carrying f; Report and Phase on it call f.
func With(ctx context.Context, f Func) context.Context {
	return context.WithValue(ctx, key{}, f)
}

// Report sends an event to the reporter in ctx, if any.
func Report(ctx context.Context, e Event) {
	if f, ok := ctx.Value(key{}).(Func); ok && f != nil {
		f(e)
	}
}

// Phase reports that the operation entered phase (amount unknown).
func Phase(ctx context.Context, phase string) { Report(ctx, Event{Phase: phase}) }

// Bytes reports done of total bytes of phase.
func Bytes(ctx context.Context, phase string, done, total uint64) {
	Report(ctx, Event{Phase: phase, Done: done, Total: total})
}

package api

import "encoding/json"

// Streamed progress. A long call (create-lu, import-lu, modify-lu,
// snapshot-lu, clone-lu, delete-lu --destroy-zvol) asked with the header
// "Accept: application/x-ndjson" is answered with HTTP 200 and a stream of
// newline-delimited StreamEvents: progress events in order, then exactly
// one final event holding the result or the error. The operation runs
// under the connection: when the client closes it (or only its writing
// half, to still read the outcome), the operation is cancelled and undone,
// and the final event says CANCELLED. Without that header, or for other
// calls, the answer is the single JSON document as always, and the call
// runs to completion whatever the client does.
const StreamContentType = "application/x-ndjson"

// CodeCancelled: the client cancelled a streamed call; nothing was changed.
const CodeCancelled Code = "CANCELLED"

// Progress is one progress event of a streamed call.
type Progress struct {
	// Phase says what the daemon is doing ("allocating /srv/lu0.img",
	// "zfs create tank/vm1").
	Phase string `json:"phase"`
	// ElapsedMS is the time since the call began, PhaseMS since the
	// phase began, in milliseconds.
	ElapsedMS int64 `json:"elapsed_ms"`
	PhaseMS   int64 `json:"phase_ms"`
	// Done and Total are bytes of the phase; Total 0: not known.
	Done  uint64 `json:"done,omitempty"`
	Total uint64 `json:"total,omitempty"`
}

// StreamEvent is one line of a streamed answer; exactly one field is set.
type StreamEvent struct {
	Progress *Progress       `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// A journal line is one acknowledged write or one durability mark, in
// the order the workload saw them:
//
//	{"w":{"seq":7,"sector":4096,"n":16}}   a write of n sectors completed (acknowledged)
//	{"m":"m12"}                            everything above is acknowledged durable: a
//	                                       flush (or FUA, or wcd) completed, then the
//	                                       mark was put into the dm-log-writes log
type journalEntry struct {
	W *journalWrite `json:"w,omitempty"`
	M string        `json:"m,omitempty"`
}

type journalWrite struct {
	Seq    uint64 `json:"seq"`
	Sector uint64 `json:"sector"` // LU sector (logical block)
	N      uint64 `json:"n"`      // sectors
}

// maxJournal bounds what a journal may hold.
const maxJournal = 10_000_000

func readJournal(r io.Reader) ([]journalEntry, error) {
	var out []journalEntry
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		if len(out) >= maxJournal {
			return nil, fmt.Errorf("journal: more than %d entries", maxJournal)
		}
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("journal line %d: %w", line, err)
		}
		if (e.W == nil) == (e.M == "") {
			return nil, fmt.Errorf("journal line %d: want exactly one of w and m", line)
		}
		if e.W != nil && (e.W.N == 0 || e.W.N > 1<<20) {
			return nil, fmt.Errorf("journal line %d: bad write length %d", line, e.W.N)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

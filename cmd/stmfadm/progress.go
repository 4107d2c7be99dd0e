package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/costar-project/costar/api"
)

// Streamed progress of long calls (create-lu, modify-lu, import-lu,
// snapshot-lu, clone-lu, delete-lu --destroy-zvol). Everything goes to
// stderr, so stdout stays what scripts parse: on a terminal a bar (or the
// phase and elapsed time) redrawn in place; elsewhere nothing unless the
// call takes long (a line when it starts taking long and one when it
// ends), or with --progress a plain line per phase and per second.
// Ctrl-C cancels: stmfd undoes the operation and says so.

// addProgressFlags gives the long verbs --progress.
func addProgressFlags(app *cli.App) {
	long := []string{"create-lu", "modify-lu", "import-lu", "delete-lu", "snapshot-lu", "clone-lu"}
	for _, c := range app.Commands {
		if slices.Contains(long, c.Name) {
			c.Flags = append(c.Flags, &cli.BoolFlag{Name: "progress",
				Usage: "print progress lines on stderr when it is not a terminal (a terminal gets a progress bar anyway)"})
		}
	}
}

// progressMode is how progress is shown.
type progressMode int

const (
	progressQuiet progressMode = iota // only a note when the call takes long
	progressLines                     // a line per phase and per second
	progressBar                       // redrawn in place on a terminal
)

// Timings of the views.
const (
	barDelay     = time.Second     // a bar appears only for calls this slow
	quietDelay   = 3 * time.Second // the quiet view's note
	lineInterval = time.Second     // plain lines within a phase
	progressTick = 250 * time.Millisecond
)

// longCall runs method with streamed progress, described as what.
func (e *env) longCall(c *cli.Context, what, method string, req, resp any) error {
	mode, width := progressQuiet, 0
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		mode = progressBar
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			width = w
		}
	} else if c.Bool("progress") {
		mode = progressLines
	}
	v := newProgressView(e.stderr, e.name, what, mode, width, time.Now)
	events := make(chan api.Progress, 16)
	done := make(chan error, 1)
	go func() {
		// Blocking is fine: the loop below reads until Stream returns, and
		// stmfd coalesces what a slow reader has not taken yet.
		done <- e.client.Stream(c.Context, method, req, resp, func(p api.Progress) { events <- p })
	}()
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	for {
		select {
		case p := <-events:
			v.event(p)
		case <-tick.C:
			v.tick()
		case err := <-done:
			for len(events) > 0 {
				v.event(<-events)
			}
			v.finish(err, c.Context.Err() != nil)
			return err
		}
	}
}

// progressView renders one call's progress.
type progressView struct {
	w     io.Writer
	name  string
	what  string
	mode  progressMode
	width int // terminal columns; 0 = unknown
	now   func() time.Time
	start time.Time

	cur      api.Progress
	have     bool
	shown    bool      // something was printed
	lastLine time.Time // the last plain line
}

func newProgressView(w io.Writer, name, what string, mode progressMode, width int, now func() time.Time) *progressView {
	return &progressView{w: w, name: name, what: what, mode: mode, width: width, now: now, start: now()}
}

func (v *progressView) event(p api.Progress) {
	newPhase := !v.have || p.Phase != v.cur.Phase
	v.cur, v.have = p, true
	switch v.mode {
	case progressLines:
		last := p.Total != 0 && p.Done == p.Total
		if newPhase || last || v.now().Sub(v.lastLine) >= lineInterval {
			v.line()
		}
	case progressBar:
		v.draw()
	default:
		v.tick()
	}
}

func (v *progressView) tick() {
	el := v.now().Sub(v.start)
	switch v.mode {
	case progressBar:
		v.draw()
	case progressLines:
		if v.have && v.now().Sub(v.lastLine) >= lineInterval {
			v.line()
		}
	default:
		if !v.shown && el >= quietDelay {
			fmt.Fprintf(v.w, "%s: %s ...\n", v.name, v.what)
			v.shown = true
		}
	}
}

// line prints the current state as one plain line.
func (v *progressView) line() {
	v.lastLine = v.now()
	fmt.Fprintf(v.w, "%s: %s: %s%s %s\n", v.name, v.what, v.cur.Phase, amount(v.cur), seconds(v.now().Sub(v.start)))
	v.shown = true
}

// draw redraws the bar line (after barDelay). On a narrow terminal the
// description is shortened, never the figures.
func (v *progressView) draw() {
	el := v.now().Sub(v.start)
	if el < barDelay {
		return
	}
	head, tail := v.name+": "+v.what, ""
	if v.have {
		head += ": " + v.cur.Phase
		if v.cur.Total != 0 {
			tail = " " + bar(v.cur.Done, v.cur.Total, 20)
		}
		tail += amount(v.cur)
	}
	tail += " " + seconds(el)
	if room := v.width - 1 - len(tail); v.width > 1 && len(head) > room {
		head = head[:max(room-3, 0)] + "..."
	}
	fmt.Fprintf(v.w, "\r\x1b[K%s%s", head, tail)
	v.shown = true
}

// finish ends the view with the call's outcome.
func (v *progressView) finish(err error, interrupted bool) {
	if !v.shown && !(interrupted && v.mode != progressQuiet) {
		return
	}
	status := "done"
	switch {
	case api.IsCode(err, api.CodeCancelled):
		status = "cancelled"
	case err != nil:
		status = "failed"
	}
	if v.mode == progressBar {
		fmt.Fprint(v.w, "\r\x1b[K")
	}
	fmt.Fprintf(v.w, "%s: %s: %s after %s\n", v.name, v.what, status, seconds(v.now().Sub(v.start)))
}

// amount is " 1.5G/4G (37%)" for a phase with a known total, else "".
func amount(p api.Progress) string {
	if p.Total == 0 {
		return ""
	}
	return fmt.Sprintf(" %s/%s (%d%%)", shortSize(p.Done), shortSize(p.Total), p.Done*100/p.Total)
}

// bar is a [####----] bar of n cells.
func bar(done, total uint64, n int) string {
	k := int(done * uint64(n) / total)
	k = min(max(k, 0), n)
	return "[" + strings.Repeat("#", k) + strings.Repeat("-", n-k) + "]"
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// shortSize is a byte count with one decimal and a binary unit.
func shortSize(n uint64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift {
			return fmt.Sprintf("%.1f%s", float64(n)/float64(uint64(1)<<u.shift), u.s)
		}
	}
	return fmt.Sprintf("%dB", n)
}

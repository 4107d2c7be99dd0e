package harness

import "testing"

func TestLogProblem(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want int
	}{
		{"clean", "time=... level=INFO msg=\"stmfd ready\"\ntime=... level=INFO msg=stopped\n", problemNone},
		{"race", "==================\nWARNING: DATA RACE\nWrite at 0x00c000 by goroutine 7:\n", problemRace},
		{"race and panic", "WARNING: DATA RACE\n...\npanic: boom\n", problemRace},
		{"panic", "level=INFO msg=x\npanic: runtime error: index out of range [3] with length 2\n\ngoroutine 1 [running]:\n", problemPanic},
		{"fatal error", "fatal error: concurrent map writes\n", problemPanic},
		{"the word panic in a message", "level=WARN msg=\"recovered from a panicking handler\"\n", problemNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := logProblem(tc.log); got != tc.want {
				t.Errorf("logProblem = %d, want %d", got, tc.want)
			}
		})
	}
}

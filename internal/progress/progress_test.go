package progress

import (
	"context"
	"slices"
	"testing"
)

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(context.Context)
		want []Event
	}{
		{"phase", func(ctx context.Context) { Phase(ctx, "zfs create") }, []Event{{Phase: "zfs create"}}},
		{"bytes in order", func(ctx context.Context) {
			Bytes(ctx, "allocating", 1, 3)
			Bytes(ctx, "allocating", 3, 3)
		}, []Event{{"allocating", 1, 3}, {"allocating", 3, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Event
			tc.send(With(context.Background(), func(e Event) { got = append(got, e) }))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Without a reporter, reporting is a no-op.
	Phase(context.Background(), "nobody listens")
}
